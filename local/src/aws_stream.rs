//! The engine's AWS backend reads the table's stream through the DynamoDB Streams API, the way
//! Lambda's pollers do, and mirrors each record, as the JSON Lambda would deliver, into the local
//! stream table. The dispatchers then filter and deliver from there exactly as they do for the
//! embedded table. Each shard's last read sequence number is stored with the records it read, in one
//! transaction, so a restart neither skips nor repeats a record.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use serde_json::{json, Value};

use crate::db::{Database, MirroredRecord};

pub struct StreamTailer {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    db: Database,
}

fn image(map: &Option<HashMap<String, AttributeValue>>) -> Option<Value> {
    let map = map.as_ref()?;
    let item = serde_dynamo::Item::from(map.clone());
    serde_json::to_value(item).ok()
}

/// A Streams API record as Lambda's event JSON.
pub fn lambda_record(record: &Record, stream_arn: &str) -> Option<MirroredRecord> {
    let change = record.dynamodb.as_ref()?;
    let sequence = change.sequence_number.clone()?;
    let created_ms = change
        .approximate_creation_date_time
        .and_then(|t| t.to_millis().ok())
        .unwrap_or_else(state::now_ms);
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": created_ms as f64 / 1000.0,
        "SequenceNumber": sequence,
        "SizeBytes": change.size_bytes.unwrap_or_default(),
        "StreamViewType": change.stream_view_type.as_ref().map(|v| v.as_str()).unwrap_or("NEW_AND_OLD_IMAGES"),
    });
    for (key, value) in [
        ("Keys", &change.keys),
        ("NewImage", &change.new_image),
        ("OldImage", &change.old_image),
    ] {
        if let Some(v) = image(value) {
            dynamodb[key] = v;
        }
    }
    let item_id = dynamodb["Keys"]["id"]["S"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let record = json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": record.event_version,
        "eventSource": record.event_source,
        "awsRegion": record.aws_region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    });
    Some(MirroredRecord {
        item_id,
        created_ms,
        record,
    })
}

impl StreamTailer {
    pub fn new(
        client: aws_sdk_dynamodbstreams::Client,
        stream_arn: impl Into<String>,
        db: Database,
    ) -> Self {
        Self {
            client,
            stream_arn: stream_arn.into(),
            db,
        }
    }

    /// The table's current stream.
    pub async fn stream_arn_of(
        ddb: &aws_sdk_dynamodb::Client,
        table: &str,
    ) -> anyhow::Result<String> {
        let out = ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .with_context(|| format!("DescribeTable {table}"))?;
        out.table
            .and_then(|t| t.latest_stream_arn)
            .with_context(|| format!("table {table} has no stream; enable NEW_AND_OLD_IMAGES"))
    }

    /// Reads whatever the stream has that the mirror does not; returns how many records it added.
    pub async fn poll(&self) -> anyhow::Result<usize> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .context("DescribeStream")?;
            let desc = out
                .stream_description
                .context("DescribeStream returned no description")?;
            shards.extend(desc.shards.unwrap_or_default());
            start = desc.last_evaluated_shard_id;
            if start.is_none() {
                break;
            }
        }
        let positions = self.db.shard_positions().await?;
        let mut added = 0;
        for shard in &shards {
            let Some(id) = shard.shard_id.clone() else {
                continue;
            };
            let position = positions.get(&id);
            if position.is_some_and(|p| p.done) {
                continue;
            }
            // Children wait until their parent is read to its end: records of one item stay in order.
            if let Some(parent) = &shard.parent_shard_id {
                let parent_listed = shards.iter().any(|s| s.shard_id.as_ref() == Some(parent));
                if parent_listed && !positions.get(parent).is_some_and(|p| p.done) {
                    continue;
                }
            }
            added += self
                .read_shard(&id, position.and_then(|p| p.last_sequence.clone()))
                .await?;
        }
        Ok(added)
    }

    async fn read_shard(&self, shard_id: &str, after: Option<String>) -> anyhow::Result<usize> {
        let mut req = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id);
        req = match &after {
            Some(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let mut iterator = req.send().await.context("GetShardIterator")?.shard_iterator;
        let mut added = 0;
        while let Some(it) = iterator {
            let out = self
                .client
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .context("GetRecords")?;
            let records: Vec<MirroredRecord> = out
                .records
                .unwrap_or_default()
                .iter()
                .filter_map(|r| lambda_record(r, &self.stream_arn))
                .collect();
            let closed = out.next_shard_iterator.is_none();
            let last = records.last().and_then(|r| {
                r.record["dynamodb"]["SequenceNumber"]
                    .as_str()
                    .map(str::to_owned)
            });
            let empty = records.is_empty();
            added += records.len();
            if !empty || closed {
                self.db
                    .mirror(shard_id.to_owned(), records, last, closed)
                    .await?;
            }
            if empty {
                break; // caught up with an open shard (or finished a closed one)
            }
            iterator = out.next_shard_iterator;
        }
        Ok(added)
    }
}
