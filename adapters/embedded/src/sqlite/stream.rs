//! The stream table as the mappings' record source, and their checkpoints; a mapping's dead
//! letters are written with its checkpoint (see `dead_letters.rs` for reading them).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use event_source_mapping::{
    BoxError, Checkpoints, Cursor, DeadLetter, InFlight, RecordSource, SourceRecord,
};
use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{sequence_number, Database};

/// The stream of a [`Database`], for the dispatchers.
#[derive(Clone)]
pub struct SqliteStream {
    pub(super) db: Database,
    parsed: Arc<Mutex<Parsed>>,
}

/// The records parsed last, newest at the back. Every mapping reads every record (to filter it),
/// at about the same place in the stream, so each record is parsed once rather than once a mapping
/// (JSON parsing was the largest part of reading the stream under load). A kept record is the
/// stored one: rows are never rewritten, and `seq` is AUTOINCREMENT, never reused.
#[derive(Default)]
struct Parsed {
    records: VecDeque<(u64, Arc<Value>)>,
}

/// Records kept parsed: a few batches' scans of every mapping, a few MB at most.
const PARSED_RECORDS: usize = 1024;

impl Parsed {
    fn get(&self, seq: u64) -> Option<Arc<Value>> {
        let i = self.records.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(self.records[i].1.clone())
    }

    /// Keeps `record` if it is newer than every record kept (reads go forward; an older one is a
    /// re-read after a reset, not worth reordering for).
    fn keep(&mut self, seq: u64, record: &Arc<Value>) {
        if self.records.back().is_some_and(|(last, _)| *last >= seq) {
            return;
        }
        if self.records.len() == PARSED_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back((seq, record.clone()));
    }
}

/// The stream's last position, and the position the slowest mapping has read to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    pub head: u64,
    pub read: u64,
}

impl Unread {
    /// Records written and not yet read by the slowest mapping.
    pub fn records(&self) -> u64 {
        self.head - self.read
    }
}

impl SqliteStream {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            parsed: Default::default(),
        }
    }

    /// Records in the stream that the slowest of `mappings` has not read yet: the work accepted
    /// and not yet through the pipeline.
    pub async fn backlog(&self, mappings: &[String]) -> anyhow::Result<u64> {
        Ok(self.unread(mappings).await?.records())
    }

    /// Where the stream ends and where the slowest of `mappings` has read to. Two index lookups
    /// per mapping, whatever the backlog; a mapping that has never saved a checkpoint has read
    /// nothing.
    pub async fn unread(&self, mappings: &[String]) -> anyhow::Result<Unread> {
        let mappings = mappings.to_vec();
        self.db
            .read(move |c| {
                let head: u64 = c
                    .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM stream")?
                    .query_row([], |r| r.get(0))?;
                let mut slowest = head;
                let mut stmt =
                    c.prepare_cached("SELECT seq FROM checkpoints WHERE mapping = ?1")?;
                for mapping in &mappings {
                    let read: u64 = stmt
                        .query_row([mapping], |r| r.get(0))
                        .optional()?
                        .unwrap_or(0);
                    slowest = slowest.min(read);
                }
                Ok(Unread {
                    head,
                    read: slowest,
                })
            })
            .await
    }

    /// The items of the records after `read` (a position [`SqliteStream::unread`] gave), each once,
    /// at most `at_most` of them: the items whose work is not finished. One range read of the
    /// stream's primary key.
    pub async fn items_after(&self, read: u64, at_most: usize) -> anyhow::Result<Vec<String>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT DISTINCT item_id FROM stream WHERE seq > ?1 LIMIT ?2",
                )?;
                let ids = stmt
                    .query_map(rusqlite::params![read, at_most as i64], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(ids)
            })
            .await
    }

    /// Moves every mapping back to the start of the stream (replay) or to its end (skip).
    pub async fn reset_checkpoints(&self, to_start: bool) -> anyhow::Result<u64> {
        self.db
            .write(move |c| {
                let target: u64 = if to_start {
                    0
                } else {
                    c.query_row("SELECT COALESCE(MAX(seq), 0) FROM stream", [], |r| r.get(0))?
                };
                c.execute(
                    "UPDATE checkpoints SET seq = ?1, in_flight_first = NULL,
                       in_flight_attempts = NULL, in_flight_limit = NULL",
                    [target],
                )?;
                Ok(target)
            })
            .await
    }
}

/// A stored record as Lambda delivers it. The embedded table's records get their position on read
/// (a row's seq is only known after its insert); records mirrored from DynamoDB Streams keep their
/// own.
pub(super) fn parse(seq: u64, text: &str) -> serde_json::Result<Value> {
    let mut record: Value = serde_json::from_str(text)?;
    if record["dynamodb"]["SequenceNumber"].is_null() {
        record["eventID"] = json!(format!("{seq:032x}"));
        record["dynamodb"]["SequenceNumber"] = json!(sequence_number(seq));
    }
    Ok(record)
}

fn save(c: &rusqlite::Connection, mapping: &str, cursor: Cursor) -> rusqlite::Result<()> {
    let f = cursor.in_flight;
    c.prepare_cached(
        "INSERT INTO checkpoints (mapping, seq, in_flight_first, in_flight_attempts, in_flight_limit)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (mapping) DO UPDATE SET seq = excluded.seq,
           in_flight_first = excluded.in_flight_first,
           in_flight_attempts = excluded.in_flight_attempts,
           in_flight_limit = excluded.in_flight_limit",
    )?
    .execute(params![
        mapping,
        cursor.position,
        f.map(|f| f.first),
        f.map(|f| f.attempts),
        f.map(|f| f.limit as i64),
    ])?;
    Ok(())
}

#[async_trait]
impl RecordSource for SqliteStream {
    async fn read(&self, after: u64, limit: usize) -> Result<Vec<SourceRecord>, BoxError> {
        let parsed = self.parsed.clone();
        let records = self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT seq, created_ms, record FROM stream WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let mut rows = stmt.query(params![after, limit as i64])?;
                // Held for the whole read: the database's lock already serialises reads.
                let mut parsed = parsed.lock().expect("parsed records lock");
                let mut records = Vec::new();
                while let Some(row) = rows.next()? {
                    let seq: u64 = row.get(0)?;
                    // A record the other mapping has read is parsed already: its text is not
                    // even copied out of SQLite.
                    let record = match parsed.get(seq) {
                        Some(record) => record,
                        None => {
                            let record = Arc::new(parse(seq, row.get_ref(2)?.as_str()?)?);
                            parsed.keep(seq, &record);
                            record
                        }
                    };
                    records.push(SourceRecord {
                        position: seq,
                        created_ms: row.get(1)?,
                        record,
                    });
                }
                Ok(records)
            })
            .await?;
        Ok(records)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.db.subscribe()
    }
}

#[async_trait]
impl Checkpoints for SqliteStream {
    async fn cursor(&self, mapping: &str) -> Result<Cursor, BoxError> {
        let mapping = mapping.to_owned();
        let cursor = self
            .db
            .read(move |c| {
                let row = c
                    .prepare_cached(
                        "SELECT seq, in_flight_first, in_flight_attempts, in_flight_limit
                         FROM checkpoints WHERE mapping = ?1",
                    )?
                    .query_row([mapping], |r| {
                        Ok((
                            r.get::<_, u64>(0)?,
                            r.get::<_, Option<u64>>(1)?,
                            r.get::<_, Option<u32>>(2)?,
                            r.get::<_, Option<i64>>(3)?,
                        ))
                    })
                    .optional()?;
                Ok(match row {
                    None => Cursor::default(),
                    Some((position, first, attempts, limit)) => Cursor {
                        position,
                        in_flight: match (first, attempts, limit) {
                            (Some(first), Some(attempts), Some(limit)) => Some(InFlight {
                                first,
                                attempts,
                                limit: limit.max(1) as usize,
                            }),
                            _ => None,
                        },
                    },
                })
            })
            .await?;
        Ok(cursor)
    }

    async fn save(&self, mapping: &str, cursor: Cursor) -> Result<(), BoxError> {
        let mapping = mapping.to_owned();
        self.db
            .write(move |c| Ok(save(c, &mapping, cursor)?))
            .await?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        mapping: &str,
        letters: Vec<DeadLetter>,
        cursor: Cursor,
    ) -> Result<(), BoxError> {
        let mapping = mapping.to_owned();
        self.db
            .write(move |c| {
                for l in &letters {
                    c.execute(
                        "INSERT INTO dead_letters (mapping, seq, reason, created_ms, record) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![mapping, l.record.position, l.reason, state::now_ms(), l.record.record.to_string()],
                    )?;
                }
                save(c, &mapping, cursor)?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}
