//! The engine's AWS backend (feature `aws`): the handlers over DynamoDB, S3 and SNS, and the
//! table's stream read through DynamoDB Streams into the local stream, where the mappings read it
//! exactly as they read the embedded table's own.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_adapters::streams::{ReadRecord, ShardLog, ShardPosition, StreamReader};
use aws_adapters::{DynamoTable, S3Store, SnsNotifier};
use embedded_adapters::sqlite::Database;

#[derive(Clone)]
pub struct AwsBackend {
    pub table: DynamoTable,
    pub store: S3Store,
    pub notifier: SnsNotifier,
    pub reader: std::sync::Arc<StreamReader>,
}

impl AwsBackend {
    /// Clients from one SDK config (endpoints, region and credentials come from the environment).
    pub async fn connect(
        sdk: &aws_config::SdkConfig,
        table: &str,
        bucket: &str,
        topic_arn: &str,
        s3_path_style: bool,
    ) -> anyhow::Result<AwsBackend> {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(s3_path_style)
                .build(),
        );
        Self::from_clients(
            aws_sdk_dynamodb::Client::new(sdk),
            aws_sdk_dynamodbstreams::Client::new(sdk),
            s3,
            aws_sdk_sns::Client::new(sdk),
            table,
            bucket,
            topic_arn,
        )
        .await
    }

    /// From ready clients (each may have its own endpoint).
    pub async fn from_clients(
        ddb: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        s3: aws_sdk_s3::Client,
        sns: aws_sdk_sns::Client,
        table: &str,
        bucket: &str,
        topic_arn: &str,
    ) -> anyhow::Result<AwsBackend> {
        let stream_arn = StreamReader::stream_arn_of(&ddb, table).await?;
        Ok(AwsBackend {
            table: DynamoTable::new(ddb, table),
            store: S3Store::new(s3, bucket),
            notifier: SnsNotifier::new(sns, topic_arn),
            reader: std::sync::Arc::new(StreamReader::new(streams, stream_arn)),
        })
    }
}

/// DynamoDB Streams, mirrored into the local stream.
pub struct Mirror {
    reader: std::sync::Arc<StreamReader>,
    log: MirrorLog,
}

impl Mirror {
    pub fn new(reader: std::sync::Arc<StreamReader>, db: Database) -> Mirror {
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
