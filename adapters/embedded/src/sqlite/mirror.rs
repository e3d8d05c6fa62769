//! The engine's AWS backend reads DynamoDB Streams and appends what it reads here, so its mappings
//! read one local stream whichever table is behind it. Each shard's last sequence number is stored
//! with the records read from it, in one transaction: a restart neither skips nor repeats one.

use std::collections::HashMap;

use rusqlite::params;

use super::Database;

/// How far the mirror has read one shard.
#[derive(Debug, Clone)]
pub struct ShardPosition {
    pub last_sequence: Option<String>,
    pub done: bool,
}

impl Database {
    /// Appends `records` (item id, written at, Lambda's JSON) read from one shard and moves that
    /// shard's position, in one transaction.
    pub async fn mirror(
        &self,
        shard_id: String,
        records: Vec<(String, i64, serde_json::Value)>,
        last_sequence: Option<String>,
        done: bool,
    ) -> anyhow::Result<()> {
        let last_seq = self
            .write(move |c| {
                let mut last = None;
                for (item_id, created_ms, record) in &records {
                    c.execute(
                        "INSERT INTO stream (item_id, created_ms, record) VALUES (?1, ?2, ?3)",
                        params![item_id, created_ms, record.to_string()],
                    )?;
                    last = Some(c.last_insert_rowid() as u64);
                }
                c.execute(
                    "INSERT INTO shards (shard_id, last_sequence, done) VALUES (?1, ?2, ?3)
                     ON CONFLICT (shard_id) DO UPDATE SET
                       last_sequence = COALESCE(excluded.last_sequence, shards.last_sequence),
                       done = excluded.done",
                    params![shard_id, last_sequence, done],
                )?;
                Ok(last)
            })
            .await?;
        if let Some(seq) = last_seq {
            self.appended(seq);
        }
        Ok(())
    }

    pub async fn shard_positions(&self) -> anyhow::Result<HashMap<String, ShardPosition>> {
        self.read(|c| {
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
}
