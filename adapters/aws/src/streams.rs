//! A table's stream read through the DynamoDB Streams API, the way Lambda's pollers read it: every
//! shard from where the last read stopped, a child only after its parent is read to its end (so
//! the records of one item stay in order), each record as the event record Lambda delivers.
//!
//! Where the records and each shard's position are kept is the caller's [`ShardLog`]: the engine
//! appends them to its local stream, records and position in one write, so a restart neither
//! skips nor repeats one.

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use aws_lambda_events::dynamodb::{EventRecord, StreamRecord, StreamViewType, UserIdentity};
use aws_sdk_dynamodbstreams::error::SdkError;
use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use state::{GivenUpBatch, GivenUpRecords, StateError};

/// How far one shard has been read.
#[derive(Debug, Clone, Default)]
pub struct ShardPosition {
    pub last_sequence: Option<String>,
    /// The shard is closed and read to its end.
    pub done: bool,
}

/// One record read, and when it was written (epoch ms).
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub record: EventRecord,
    pub created_ms: i64,
}

/// Where a [`StreamReader`] keeps what it read.
#[async_trait]
pub trait ShardLog: Send + Sync {
    async fn positions(&self) -> anyhow::Result<HashMap<String, ShardPosition>>;
    /// Keeps `records` read from `shard_id` and its new position, in one write.
    async fn append(
        &self,
        shard_id: &str,
        records: Vec<ReadRecord>,
        position: ShardPosition,
    ) -> anyhow::Result<()>;
}

pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
}

/// A Streams API record as the event record Lambda delivers.
pub fn lambda_record(record: &Record, stream_arn: &str) -> Option<ReadRecord> {
    let change = record.dynamodb.as_ref()?;
    let sequence = change.sequence_number.clone()?;
    let created_ms = change
        .approximate_creation_date_time
        .and_then(|t| t.to_millis().ok())
        .unwrap_or_else(state::now_ms);
    let image = |map: &Option<HashMap<String, _>>| {
        map.clone()
            .map(serde_dynamo::Item::from)
            .unwrap_or_default()
    };
    let mut stream = StreamRecord::default();
    stream.approximate_creation_date_time =
        chrono::DateTime::from_timestamp_millis(created_ms).unwrap_or_default();
    stream.keys = image(&change.keys);
    stream.new_image = image(&change.new_image);
    stream.old_image = image(&change.old_image);
    stream.sequence_number = Some(sequence);
    stream.size_bytes = change.size_bytes.unwrap_or_default();
    stream.stream_view_type = change.stream_view_type.as_ref().map(|v| match v.as_str() {
        "NEW_IMAGE" => StreamViewType::NewImage,
        "OLD_IMAGE" => StreamViewType::OldImage,
        "KEYS_ONLY" => StreamViewType::KeysOnly,
        _ => StreamViewType::NewAndOldImages,
    });
    let mut out = EventRecord::default();
    out.event_id = record.event_id.clone().unwrap_or_default();
    out.event_name = record
        .event_name
        .as_ref()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    out.event_version = record.event_version.clone();
    out.event_source = record.event_source.clone();
    out.aws_region = record.aws_region.clone().unwrap_or_default();
    out.event_source_arn = Some(stream_arn.to_owned());
    // TTL deletions say who deleted: {"type": "Service", "principalId": "dynamodb.amazonaws.com"}.
    out.user_identity = record.user_identity.as_ref().map(|u| {
        let mut id = UserIdentity::default();
        id.type_ = u.r#type.clone().unwrap_or_default();
        id.principal_id = u.principal_id.clone().unwrap_or_default();
        id
    });
    out.change = stream;
    Some(ReadRecord {
        record: out,
        created_ms,
    })
}

impl StreamReader {
    pub fn new(client: aws_sdk_dynamodbstreams::Client, stream_arn: impl Into<String>) -> Self {
        Self {
            client,
            stream_arn: stream_arn.into(),
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

    /// Reads whatever the stream has that `log` does not; returns how many records it added.
    pub async fn poll(&self, log: &dyn ShardLog) -> anyhow::Result<usize> {
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
        let positions = log.positions().await?;
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
            let after = position.and_then(|p| p.last_sequence.clone());
            added += self.read_shard(log, &id, after).await?;
        }
        Ok(added)
    }

    async fn read_shard(
        &self,
        log: &dyn ShardLog,
        shard_id: &str,
        after: Option<String>,
    ) -> anyhow::Result<usize> {
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
            let records: Vec<ReadRecord> = out
                .records
                .unwrap_or_default()
                .iter()
                .filter_map(|r| lambda_record(r, &self.stream_arn))
                .collect();
            let closed = out.next_shard_iterator.is_none();
            let last = records
                .last()
                .and_then(|r| r.record.change.sequence_number.clone());
            let empty = records.is_empty();
            added += records.len();
            if !empty || closed {
                let position = ShardPosition {
                    last_sequence: last,
                    done: closed,
                };
                log.append(shard_id, records, position).await?;
            }
            if empty {
                break; // caught up with an open shard (or finished a closed one)
            }
            iterator = out.next_shard_iterator;
        }
        Ok(added)
    }
}

/// Sequence numbers are decimal strings of varying length: compare them as numbers.
fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[async_trait]
impl GivenUpRecords for StreamReader {
    /// Reads the batch's shard from its first record to its last (records past the 24-hour
    /// retention are trimmed: then the answer is empty).
    async fn records(&self, batch: &GivenUpBatch) -> Result<Vec<EventRecord>, StateError> {
        let iterator = self
            .client
            .get_shard_iterator()
            .stream_arn(&batch.stream_arn)
            .shard_id(&batch.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&batch.first_sequence)
            .send()
            .await;
        let mut iterator = match iterator {
            Ok(out) => out.shard_iterator,
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    GetShardIteratorError::TrimmedDataAccessException(_)
                        | GetShardIteratorError::ResourceNotFoundException(_)
                ) =>
            {
                tracing::error!(shard = %batch.shard_id, first = %batch.first_sequence, "the given-up records are no longer in the stream");
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(StateError::unavailable(
                    anyhow::Error::new(e).context("GetShardIterator for given-up records"),
                ))
            }
        };
        let mut found = Vec::new();
        while let Some(it) = iterator {
            let out = self
                .client
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .context("GetRecords for given-up records")
                .map_err(StateError::Unavailable)?;
            let page = out.records.unwrap_or_default();
            if page.is_empty() {
                break; // the tip of an open shard, or the end of a closed one
            }
            for record in &page {
                let Some(read) = lambda_record(record, &batch.stream_arn) else {
                    continue;
                };
                let seq = read
                    .record
                    .change
                    .sequence_number
                    .clone()
                    .unwrap_or_default();
                if sequence_order(&seq, &batch.last_sequence).is_gt() {
                    return Ok(found);
                }
                found.push(read.record);
            }
            iterator = out.next_shard_iterator;
        }
        Ok(found)
    }
}
