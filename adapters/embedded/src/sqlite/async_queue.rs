//! The queue of asynchronous invocations (S3 bucket notifications) in the same database, so an
//! event is kept from the moment the object is written until its function is done with it.

use async_trait::async_trait;
use event_source_mapping::async_invoke::{AsyncQueue, QueuedEvent};
use event_source_mapping::BoxError;
use rusqlite::params;
use serde_json::Value;

use super::Database;

/// `next_at_ms` of an event held back until its object is in place.
const HELD: i64 = i64::MAX;

impl Database {
    /// Queues `records` for `queue`, due now (or held, not due until [`Database::release`]); in
    /// one transaction. Returns their ids.
    pub async fn enqueue(
        &self,
        queue: &str,
        records: Vec<Value>,
        held: bool,
    ) -> anyhow::Result<Vec<i64>> {
        let queue = queue.to_owned();
        let ids = self
            .write(move |c| {
                let now = state::now_ms();
                let due = if held { HELD } else { now };
                let mut ids = Vec::with_capacity(records.len());
                for record in &records {
                    c.prepare_cached(
                        "INSERT INTO async_events (queue, created_ms, next_at_ms, record) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![queue, now, due, record.to_string()])?;
                    ids.push(c.last_insert_rowid());
                }
                Ok(ids)
            })
            .await?;
        if !held {
            self.enqueued();
        }
        Ok(ids)
    }

    /// Makes held events due now.
    pub async fn release(&self, ids: Vec<i64>) -> anyhow::Result<()> {
        self.write(move |c| {
            let now = state::now_ms();
            for id in &ids {
                c.execute(
                    "UPDATE async_events SET next_at_ms = ?1 WHERE id = ?2 AND next_at_ms = ?3",
                    params![now, id, HELD],
                )?;
            }
            Ok(())
        })
        .await?;
        self.enqueued();
        Ok(())
    }

    /// Events held since before `before_ms`: their objects' writes were cut short (a crash), or
    /// are slow.
    pub async fn held(&self, before_ms: i64) -> anyhow::Result<Vec<(i64, Value)>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, record FROM async_events WHERE next_at_ms = ?1 AND created_ms < ?2 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![HELD, before_ms], |r| {
                Ok((r.get(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (id, record) = row?;
                Ok((id, serde_json::from_str(&record)?))
            })
            .collect()
        })
        .await
    }

    /// Forgets a held event whose object never arrived.
    pub async fn drop_held(&self, id: i64) -> anyhow::Result<()> {
        self.write(move |c| {
            c.execute(
                "DELETE FROM async_events WHERE id = ?1 AND next_at_ms = ?2",
                params![id, HELD],
            )?;
            Ok(())
        })
        .await
    }

    /// How many events wait in `queue`.
    pub async fn queued(&self, queue: &str) -> anyhow::Result<u64> {
        let queue = queue.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM async_events WHERE queue = ?1",
                [queue],
                |r| r.get(0),
            )?)
        })
        .await
    }
}

#[async_trait]
impl AsyncQueue for Database {
    async fn due(
        &self,
        queue: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<QueuedEvent>, BoxError> {
        let queue = queue.to_owned();
        let events = self
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, created_ms, attempts, record FROM async_events
                     WHERE queue = ?1 AND next_at_ms <= ?2 ORDER BY next_at_ms, id LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![queue, now_ms, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
                })?;
                rows.map(|row| {
                    let (id, created_ms, attempts, record) = row?;
                    Ok(QueuedEvent {
                        id,
                        created_ms,
                        attempts,
                        record: serde_json::from_str(&record)?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()
            })
            .await?;
        Ok(events)
    }

    async fn next_due(&self, queue: &str) -> Result<Option<i64>, BoxError> {
        let queue = queue.to_owned();
        let at = self
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT MIN(next_at_ms) FROM async_events WHERE queue = ?1 AND next_at_ms < ?2",
                    params![queue, HELD],
                    |r| r.get::<_, Option<i64>>(0),
                )?)
            })
            .await?;
        Ok(at)
    }

    async fn attempt(&self, id: i64) -> Result<(), BoxError> {
        self.write(move |c| {
            c.execute(
                "UPDATE async_events SET attempts = attempts + 1 WHERE id = ?1",
                [id],
            )?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn done(&self, id: i64) -> Result<(), BoxError> {
        self.write(move |c| {
            c.execute("DELETE FROM async_events WHERE id = ?1", [id])?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn retry_at(&self, id: i64, at_ms: i64) -> Result<(), BoxError> {
        self.write(move |c| {
            c.execute(
                "UPDATE async_events SET next_at_ms = ?1 WHERE id = ?2",
                params![at_ms, id],
            )?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn give_up(
        &self,
        queue: &str,
        event: QueuedEvent,
        reason: String,
    ) -> Result<(), BoxError> {
        let queue = queue.to_owned();
        self.write(move |c| {
            c.execute(
                "INSERT INTO dead_letters (mapping, seq, reason, created_ms, record) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![queue, event.id, reason, state::now_ms(), event.record.to_string()],
            )?;
            c.execute("DELETE FROM async_events WHERE id = ?1", [event.id])?;
            Ok(())
        })
        .await?;
        Ok(())
    }
}
