//! The records and events the mappings gave up on (their on-failure destination), kept as the
//! failure queue's messages: the failure function receives them as an SQS mapping does (each
//! received message hidden for the queue's visibility timeout, and moved to the archive once it
//! has been received as often as the redrive policy allows), and an operator lists or redrives
//! them.

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::dynamodb::EventRecord;
use rusqlite::params;
use serde_json::Value;
use state::{GivenUpBatch, GivenUpRecords, StateError};

use super::stream::parse;
use super::{Database, SqliteStream};

/// One record or event a mapping gave up on, as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetterRow {
    pub id: i64,
    /// The mapping (or asynchronous queue) that gave up on it.
    pub mapping: String,
    /// Its position in the engine's stream (a stream record), or its event's id.
    pub seq: u64,
    pub reason: String,
    pub created_ms: i64,
    pub record: Value,
    /// How often the failure queue's consumer has received it.
    pub receives: u32,
    /// When the redrive policy moved it to the archive, if it did.
    pub archived_ms: Option<i64>,
}

/// How a failure queue hands out its messages.
#[derive(Debug, Clone)]
pub struct QueuePolicy {
    /// The mappings whose dead letters this queue holds.
    pub sources: Vec<String>,
    pub visibility_timeout: Duration,
    /// After this many receives, a message not deleted moves to the archive.
    pub max_receive_count: Option<u32>,
}

const COLUMNS: &str = "id, mapping, seq, reason, created_ms, record, receives, archived_ms";

fn row(r: &rusqlite::Row) -> rusqlite::Result<(DeadLetterRow, String)> {
    Ok((
        DeadLetterRow {
            id: r.get(0)?,
            mapping: r.get(1)?,
            seq: r.get(2)?,
            reason: r.get(3)?,
            created_ms: r.get(4)?,
            record: Value::Null,
            receives: r.get(6)?,
            archived_ms: r.get(7)?,
        },
        r.get(5)?,
    ))
}

fn with_record((mut letter, record): (DeadLetterRow, String)) -> anyhow::Result<DeadLetterRow> {
    letter.record = serde_json::from_str(&record)?;
    Ok(letter)
}

impl SqliteStream {
    /// Every dead letter, oldest first: received or not, archived or not.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetterRow>> {
        self.db
            .read(|c| {
                let sql = format!("SELECT {COLUMNS} FROM dead_letters ORDER BY id");
                let mut stmt = c.prepare(&sql)?;
                let rows = stmt.query_map([], row)?;
                rows.map(|r| with_record(r?)).collect()
            })
            .await
    }

    /// Up to `limit` messages of the queue `policy` describes that are visible now, each hidden
    /// for the visibility timeout and counted as received; in the same transaction, the messages
    /// received as often as the redrive policy allows go to the archive instead.
    pub async fn receive_dead_letters(
        &self,
        policy: &QueuePolicy,
        limit: usize,
    ) -> anyhow::Result<Vec<DeadLetterRow>> {
        if policy.sources.is_empty() {
            return Ok(Vec::new());
        }
        let policy = policy.clone();
        self.db
            .write(move |c| {
                let now = state::now_ms();
                let sources = serde_json::to_string(&policy.sources)?;
                let of_queue = "consumed_ms IS NULL AND visible_at_ms <= ?1
                    AND mapping IN (SELECT value FROM json_each(?2))";
                if let Some(max) = policy.max_receive_count {
                    let archived = c.execute(
                        &format!(
                            "UPDATE dead_letters SET consumed_ms = ?1, archived_ms = ?1
                             WHERE {of_queue} AND receives >= ?3"
                        ),
                        params![now, sources, max],
                    )?;
                    if archived > 0 {
                        tracing::error!(
                            archived,
                            "failure messages received as often as the redrive policy allows moved to the archive"
                        );
                    }
                }
                let sql = format!(
                    "SELECT {COLUMNS} FROM dead_letters WHERE {of_queue} ORDER BY id LIMIT ?3"
                );
                let letters = c
                    .prepare(&sql)?
                    .query_map(params![now, sources, limit as i64], row)?
                    .map(|r| with_record(r?))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let visible_at = now + policy.visibility_timeout.as_millis() as i64;
                let mut hide = c.prepare(
                    "UPDATE dead_letters SET receives = receives + 1, visible_at_ms = ?1 WHERE id = ?2",
                )?;
                let mut received = Vec::with_capacity(letters.len());
                for mut letter in letters {
                    hide.execute(params![visible_at, letter.id])?;
                    letter.receives += 1;
                    received.push(letter);
                }
                Ok(received)
            })
            .await
    }

    /// The failure queue's consumer handled dead letter `id`: it leaves the queue (and stays
    /// listed until it is redriven).
    pub async fn consumed_dead_letter(&self, id: i64) -> anyhow::Result<()> {
        self.db
            .write(move |c| {
                c.execute(
                    "UPDATE dead_letters SET consumed_ms = ?1 WHERE id = ?2",
                    params![state::now_ms(), id],
                )?;
                Ok(())
            })
            .await
    }

    pub async fn remove_dead_letter(&self, id: i64) -> anyhow::Result<()> {
        self.db
            .write(move |c| {
                c.execute("DELETE FROM dead_letters WHERE id = ?1", [id])?;
                Ok(())
            })
            .await
    }
}

/// The engine's failure messages name the records a mapping gave up on by their positions in this
/// stream ([`super::sequence_number`]: for the embedded table's own records, their
/// SequenceNumber); the records are read back from it, as DynamoDB Streams' are on AWS.
#[async_trait]
impl GivenUpRecords for SqliteStream {
    async fn records(&self, batch: &GivenUpBatch) -> Result<Vec<EventRecord>, StateError> {
        let position = |s: &str| {
            s.parse::<u64>().map_err(|_| StateError::Corrupt {
                id: String::new(),
                reason: format!("{s:?} is not a position in the engine's stream"),
            })
        };
        let (first, last) = (
            position(&batch.first_sequence)?,
            position(&batch.last_sequence)?,
        );
        let texts = Database::read(&self.db, move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, record FROM stream WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![first, last], |r| {
                Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
        .map_err(StateError::unavailable)?;
        texts
            .into_iter()
            .map(|(seq, text)| {
                let json = parse(seq, &text).map_err(StateError::unavailable)?;
                serde_json::from_value(json).map_err(|e| StateError::Corrupt {
                    id: String::new(),
                    reason: format!("stream record {seq}: {e}"),
                })
            })
            .collect()
    }
}
