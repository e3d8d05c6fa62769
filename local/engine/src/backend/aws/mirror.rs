//! DynamoDB Streams, mirrored into the local stream, where the mappings read it exactly as they
//! read the embedded table's own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_adapters::streams::{ReadRecord, ShardLog, ShardPosition, StreamReader};
use embedded_adapters::sqlite::Database;

use crate::runner::{Pace, Runner};

/// DynamoDB Streams, mirrored into the local stream.
pub struct Mirror {
    reader: Arc<StreamReader>,
    log: MirrorLog,
}

impl Mirror {
    pub fn new(reader: Arc<StreamReader>, db: Database) -> Mirror {
        Mirror {
            reader,
            log: MirrorLog(db),
        }
    }

    /// Reads what the stream has that the mirror does not; returns how many records it added.
    pub async fn poll(&self) -> anyhow::Result<usize> {
        self.reader.poll(&self.log).await
    }
}

/// The local stream as the reader's shard log: records and shard position in one transaction.
struct MirrorLog(Database);

#[async_trait]
impl ShardLog for MirrorLog {
    async fn positions(&self) -> anyhow::Result<HashMap<String, ShardPosition>> {
        Ok(self
            .0
            .shard_positions()
            .await?
            .into_iter()
            .map(|(shard, p)| {
                (
                    shard,
                    ShardPosition {
                        last_sequence: p.last_sequence,
                        done: p.done,
                    },
                )
            })
            .collect())
    }

    async fn append(
        &self,
        shard_id: &str,
        records: Vec<ReadRecord>,
        position: ShardPosition,
    ) -> anyhow::Result<()> {
        let rows = records
            .into_iter()
            .map(|r| {
                let item_id = match r.record.change.keys.get("id") {
                    Some(serde_dynamo::AttributeValue::S(id)) => id.clone(),
                    _ => String::new(),
                };
                (item_id, r.created_ms, state::stream::lambda_json(&r.record))
            })
            .collect();
        self.0
            .mirror(
                shard_id.to_owned(),
                rows,
                position.last_sequence,
                position.done,
            )
            .await
    }
}

/// Polls the DynamoDB stream into the local one, as Lambda's pollers do: four times a second per
/// shard at most.
pub struct MirrorRunner(pub Arc<Mirror>);

#[async_trait]
impl Runner for MirrorRunner {
    fn name(&self) -> &str {
        "stream mirror"
    }

    async fn step(&self) -> anyhow::Result<Pace> {
        Ok(match self.0.poll().await? {
            0 => Pace::Idle,
            _ => Pace::Busy,
        })
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_millis(250)
    }

    fn min_interval(&self) -> Duration {
        Duration::from_millis(250)
    }
}
