//! The embedded table: SQLite in `DATA_DIR/pipeline.db`. Every committed item write appends its
//! stream record (INSERT/MODIFY, Keys, OldImage, NewImage) in the same transaction, so the stream is
//! exactly the table's history. The same database keeps the mappings' checkpoints, the dead letters
//! and the notices the mailbox has published.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Value};
use state::{ImageId, Item, ItemTable, Outcome, StateError, Transition};
use tokio::sync::watch;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_created ON items (created_at DESC, id);
CREATE TABLE IF NOT EXISTS stream (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    mapping TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mapping TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shards (
    shard_id TEXT PRIMARY KEY,
    last_sequence TEXT,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS notices (
    dedup_key TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    published_ms INTEGER NOT NULL
);
";

/// The table's stream ARN as the local records name it.
pub const STREAM_ARN: &str = "arn:aws:dynamodb:local:000000000000:table/images/stream/local";
const REGION: &str = "local";

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

/// One stream record as a mapping reads it: its position and the JSON Lambda would deliver.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub seq: u64,
    pub item_id: String,
    pub created_ms: i64,
    pub record: Value,
}

/// One record a mapping gave up on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub mapping: String,
    pub seq: u64,
    pub reason: String,
    pub created_ms: i64,
    pub record: Value,
}

/// A record read from DynamoDB Streams, as Lambda's event JSON.
#[derive(Debug, Clone)]
pub struct MirroredRecord {
    pub item_id: String,
    pub created_ms: i64,
    pub record: Value,
}

/// How far the mirror has read one shard.
#[derive(Debug, Clone)]
pub struct ShardPosition {
    pub last_sequence: Option<String>,
    pub done: bool,
}

/// A shared SQLite connection. Calls run on blocking threads; `changes` ticks on every stream append.
#[derive(Clone)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
    changes: Arc<watch::Sender<u64>>,
    fsync: bool,
}

impl Database {
    pub fn open(path: &Path) -> anyhow::Result<Database> {
        Self::open_with(path, Durability::default())
    }

    pub fn open_with(path: &Path, durability: Durability) -> anyhow::Result<Database> {
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
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
        conn.execute_batch(SCHEMA).context("creating the schema")?;
        let last: u64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM stream", [], |r| r.get(0))?;
        Ok(Database {
            conn: Arc::new(Mutex::new(conn)),
            changes: Arc::new(watch::channel(last).0),
            fsync: durability == Durability::Power,
        })
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

    /// Records after `after`, oldest first, at most `limit`.
    pub async fn read_stream(&self, after: u64, limit: usize) -> anyhow::Result<Vec<StreamRecord>> {
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, item_id, created_ms, record FROM stream WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit as i64], |r| {
                Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
            })?;
            rows.map(|row| {
                let (seq, item_id, created_ms, text) = row?;
                let mut record: Value = serde_json::from_str(&text).context("stored stream record")?;
                // The embedded table's records get their position on read (a row's seq is only known
                // after its insert); records mirrored from DynamoDB Streams keep their own.
                if record["dynamodb"]["SequenceNumber"].is_null() {
                    record["eventID"] = json!(format!("{seq:032x}"));
                    record["dynamodb"]["SequenceNumber"] = json!(sequence_number(seq));
                }
                Ok(StreamRecord { seq, item_id, created_ms, record })
            })
            .collect()
        })
        .await
    }

    pub async fn checkpoint(&self, mapping: &str) -> anyhow::Result<u64> {
        let mapping = mapping.to_owned();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT seq FROM checkpoints WHERE mapping = ?1",
                [mapping],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
        })
        .await
    }

    pub async fn set_checkpoint(&self, mapping: &str, seq: u64) -> anyhow::Result<()> {
        let mapping = mapping.to_owned();
        self.call(move |c| {
            c.execute(
                "INSERT INTO checkpoints (mapping, seq) VALUES (?1, ?2)
                 ON CONFLICT (mapping) DO UPDATE SET seq = excluded.seq",
                params![mapping, seq],
            )?;
            Ok(())
        })
        .await
    }

    /// Moves `mapping` back to the start of the stream (replay) or to its end (skip).
    pub async fn reset_checkpoints(&self, to_start: bool) -> anyhow::Result<u64> {
        self.call(move |c| {
            let target: u64 = if to_start {
                0
            } else {
                c.query_row("SELECT COALESCE(MAX(seq), 0) FROM stream", [], |r| r.get(0))?
            };
            c.execute("UPDATE checkpoints SET seq = ?1", [target])?;
            Ok(target)
        })
        .await
    }

    /// Dead-letters `records` and moves the checkpoint past them, in one transaction.
    pub async fn dead_letter(
        &self,
        mapping: &str,
        records: Vec<StreamRecord>,
        reason: String,
        checkpoint: u64,
    ) -> anyhow::Result<()> {
        let mapping = mapping.to_owned();
        self.call(move |c| {
            let tx = c.transaction()?;
            for r in &records {
                tx.execute(
                    "INSERT INTO dead_letters (mapping, seq, reason, created_ms, record) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![mapping, r.seq, reason, state::now_ms(), r.record.to_string()],
                )?;
            }
            tx.execute(
                "INSERT INTO checkpoints (mapping, seq) VALUES (?1, ?2)
                 ON CONFLICT (mapping) DO UPDATE SET seq = excluded.seq",
                params![mapping, checkpoint],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        self.call(|c| {
            let mut stmt = c.prepare(
                "SELECT id, mapping, seq, reason, created_ms, record FROM dead_letters ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            rows.map(|row| {
                let (id, mapping, seq, reason, created_ms, record) = row?;
                Ok(DeadLetter {
                    id,
                    mapping,
                    seq,
                    reason,
                    created_ms,
                    record: serde_json::from_str(&record)?,
                })
            })
            .collect()
        })
        .await
    }

    pub async fn remove_dead_letter(&self, id: i64) -> anyhow::Result<()> {
        self.call(move |c| {
            c.execute("DELETE FROM dead_letters WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    /// Appends records read from one shard and moves that shard's position, in one transaction.
    pub async fn mirror(
        &self,
        shard_id: String,
        records: Vec<MirroredRecord>,
        last_sequence: Option<String>,
        done: bool,
    ) -> anyhow::Result<()> {
        let last_seq = self
            .call(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut last = None;
                for r in &records {
                    tx.execute(
                        "INSERT INTO stream (item_id, created_ms, record) VALUES (?1, ?2, ?3)",
                        params![r.item_id, r.created_ms, r.record.to_string()],
                    )?;
                    last = Some(tx.last_insert_rowid() as u64);
                }
                tx.execute(
                    "INSERT INTO shards (shard_id, last_sequence, done) VALUES (?1, ?2, ?3)
                     ON CONFLICT (shard_id) DO UPDATE SET
                       last_sequence = COALESCE(excluded.last_sequence, shards.last_sequence),
                       done = excluded.done",
                    params![shard_id, last_sequence, done],
                )?;
                tx.commit()?;
                Ok(last)
            })
            .await?;
        if let Some(seq) = last_seq {
            self.appended(seq);
        }
        Ok(())
    }

    pub async fn shard_positions(
        &self,
    ) -> anyhow::Result<std::collections::HashMap<String, ShardPosition>> {
        self.call(|c| {
            let mut stmt = c.prepare("SELECT shard_id, last_sequence, done FROM shards")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ShardPosition {
                        last_sequence: r.get(1)?,
                        done: r.get(2)?,
                    },
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The message id already published under `dedup_key`, or `fresh` recorded as it.
    pub async fn record_notice(
        &self,
        dedup_key: String,
        fresh: String,
        subject: String,
        body: String,
    ) -> anyhow::Result<String> {
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO notices (dedup_key, message_id, subject, body, published_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![dedup_key, fresh, subject, body, state::now_ms()],
            )?;
            let id: String = tx.query_row("SELECT message_id FROM notices WHERE dedup_key = ?1", [&dedup_key], |r| r.get(0))?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }
}

/// DynamoDB-style sequence numbers: numeric strings; zero-padded so text order is numeric order.
pub fn sequence_number(seq: u64) -> String {
    format!("{seq:021}")
}

/// The record DynamoDB Streams would write for this change (NEW_AND_OLD_IMAGES).
fn stream_record(event_name: &str, old: Option<&Item>, new: &Item, at_ms: i64) -> Value {
    let image = |item: &Item| {
        serde_json::to_value(item.to_image::<serde_dynamo::Item>()).expect("image to JSON")
    };
    let keys = json!({ "id": { "S": new.id.to_string() } });
    let mut change = json!({
        "ApproximateCreationDateTime": at_ms as f64 / 1000.0,
        "Keys": keys,
        "NewImage": image(new),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(old) = old {
        change["OldImage"] = image(old);
    }
    change["SizeBytes"] = json!(change.to_string().len());
    json!({
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": change,
        "eventSourceARN": STREAM_ARN,
    })
}

fn append(
    tx: &rusqlite::Transaction<'_>,
    record: Value,
    item: &Item,
    at_ms: i64,
) -> rusqlite::Result<u64> {
    tx.execute(
        "INSERT INTO stream (item_id, created_ms, record) VALUES (?1, ?2, ?3)",
        params![item.id.to_string(), at_ms, record.to_string()],
    )?;
    Ok(tx.last_insert_rowid() as u64)
}

fn read_item(doc: &str) -> Result<Item, StateError> {
    serde_json::from_str(doc).map_err(|e| StateError::Corrupt {
        id: String::new(),
        reason: e.to_string(),
    })
}

/// The items table port over [`Database`].
#[derive(Clone)]
pub struct SqliteTable {
    db: Database,
}

impl SqliteTable {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn unavailable(e: anyhow::Error) -> StateError {
    match e.downcast::<StateError>() {
        Ok(state) => state,
        Err(e) => StateError::Unavailable(e),
    }
}

#[async_trait]
impl ItemTable for SqliteTable {
    async fn insert(&self, item: &Item) -> Result<(), StateError> {
        let item = item.clone();
        let seq = self
            .db
            .call(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let inserted = tx.execute(
                    "INSERT OR IGNORE INTO items (id, status, created_at, doc) VALUES (?1, ?2, ?3, ?4)",
                    params![item.id.to_string(), item.status.as_str(), item.created_at, serde_json::to_string(&item)?],
                )?;
                if inserted == 0 {
                    return Err(StateError::Duplicate(item.id).into());
                }
                let seq = append(&tx, stream_record("INSERT", None, &item, item.created_at), &item, item.created_at)?;
                tx.commit()?;
                Ok(seq)
            })
            .await
            .map_err(unavailable)?;
        self.db.appended(seq);
        Ok(())
    }

    async fn get(&self, id: ImageId) -> Result<Option<Item>, StateError> {
        let doc: Option<String> = self
            .db
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT doc FROM items WHERE id = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .await
            .map_err(unavailable)?;
        doc.as_deref().map(read_item).transpose()
    }

    async fn list(&self, limit: usize) -> Result<Vec<Item>, StateError> {
        let docs: Vec<String> = self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT doc FROM items ORDER BY created_at DESC, id LIMIT ?1",
                )?;
                let rows = stmt.query_map([limit as i64], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .map_err(unavailable)?;
        docs.iter().map(|d| read_item(d)).collect()
    }

    async fn advance(&self, id: ImageId, t: &Transition) -> Result<Outcome, StateError> {
        let t = t.clone();
        let (outcome, seq) = self
            .db
            .call(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let doc: Option<String> = tx
                    .query_row(
                        "SELECT doc FROM items WHERE id = ?1",
                        [id.to_string()],
                        |r| r.get(0),
                    )
                    .optional()?;
                let current = doc.as_deref().map(read_item).transpose()?;
                let current = match current {
                    Some(item) if item.status == t.from() => item,
                    other => return Ok((t.classify(id, other)?, None)),
                };
                let next = t.apply_to(&current);
                // The same condition DynamoDB checks, in SQL.
                let changed = tx.execute(
                    "UPDATE items SET status = ?1, doc = ?2 WHERE id = ?3 AND status = ?4",
                    params![
                        next.status.as_str(),
                        serde_json::to_string(&next)?,
                        id.to_string(),
                        t.from().as_str()
                    ],
                )?;
                if changed == 0 {
                    return Ok((t.classify(id, Some(current))?, None));
                }
                let seq = append(
                    &tx,
                    stream_record("MODIFY", Some(&current), &next, t.at()),
                    &next,
                    t.at(),
                )?;
                tx.commit()?;
                Ok((Outcome::Applied(next), Some(seq)))
            })
            .await
            .map_err(unavailable)?;
        if let Some(seq) = seq {
            self.db.appended(seq);
        }
        Ok(outcome)
    }
}
