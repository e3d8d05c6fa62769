//! The engine's AWS backend (feature `aws`): the handlers over DynamoDB, S3 and SNS, and the
//! table's stream read through DynamoDB Streams into the local stream, where the mappings read it
//! exactly as they read the embedded table's own.

use std::collections::HashMap;

use anyhow::Context;
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
    /// Where the bucket's notifications arrive, when they are routed to SQS; none otherwise.
    pub bucket_events: Option<BucketEventQueue>,
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
            bucket_events: None,
        })
    }
}

/// The bucket's `s3:ObjectCreated:*` notifications, routed to an SQS queue (S3's
/// `QueueConfigurations`). On AWS, S3 invokes `ingest` itself; an engine running the handlers
/// against a bucket of its own cannot be invoked by S3, so it reads them from a queue instead
/// (moto, which cannot invoke a Lambda function, sends them there too). Each event then goes
/// through the template's notification rules and the engine's asynchronous invocation, as the
/// embedded bucket's own events do.
#[derive(Clone)]
pub struct BucketEventQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// One object-created event: its key (decoded), size and ETag.
#[derive(Debug, PartialEq)]
pub struct ObjectCreated {
    pub key: String,
    pub size: u64,
    pub etag: String,
}

impl BucketEventQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> BucketEventQueue {
        BucketEventQueue {
            client,
            url: url.into(),
        }
    }

    /// Takes the waiting messages, hands each object-created event to `created`, and deletes a
    /// message only once every event in it was taken (else SQS offers it again: at least once).
    /// Returns how many events were taken.
    pub async fn poll<F, Fut>(&self, mut created: F) -> anyhow::Result<usize>
    where
        F: FnMut(ObjectCreated) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .with_context(|| format!("ReceiveMessage {}", self.url))?;
        let mut taken = 0;
        for message in received.messages.unwrap_or_default() {
            for event in object_created_events(message.body().unwrap_or_default()) {
                created(event).await?;
                taken += 1;
            }
            if let Some(handle) = message.receipt_handle() {
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .with_context(|| format!("DeleteMessage {}", self.url))?;
            }
        }
        Ok(taken)
    }
}

/// The object-created events of an S3 notification message. Anything else (S3's `s3:TestEvent`
/// when the configuration is set, a removal, a body that is no notification) has none.
pub fn object_created_events(body: &str) -> Vec<ObjectCreated> {
    // Only the fields used, rather than `aws_lambda_events::s3::S3Event`, which requires
    // `userIdentity` and `requestParameters`: S3 sends them, moto leaves them out.
    #[derive(serde::Deserialize)]
    struct Notification {
        #[serde(rename = "Records", default)]
        records: Vec<Record>,
    }
    #[derive(serde::Deserialize)]
    struct Record {
        #[serde(rename = "eventName")]
        event_name: String,
        s3: Entity,
    }
    #[derive(serde::Deserialize)]
    struct Entity {
        object: Object,
    }
    #[derive(serde::Deserialize)]
    struct Object {
        key: String,
        size: u64,
        #[serde(rename = "eTag")]
        etag: String,
    }
    let Ok(notification) = serde_json::from_str::<Notification>(body) else {
        return Vec::new();
    };
    notification
        .records
        .into_iter()
        .filter(|r| r.event_name.starts_with("ObjectCreated"))
        .filter_map(|r| {
            // Keys arrive URL-encoded, spaces as `+`, as S3 sends them.
            let encoded = r.s3.object.key.replace('+', " ");
            let key = percent_encoding::percent_decode_str(&encoded)
                .decode_utf8()
                .ok()?
                .into_owned();
            Some(ObjectCreated {
                key,
                size: r.s3.object.size,
                etag: r.s3.object.etag.trim_matches('"').to_owned(),
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_created_events_are_decoded_and_everything_else_is_skipped() {
        let created = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
            "eventTime":"2026-11-22T02:02:50.731Z","eventName":"ObjectCreated:Put",
            "s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"b","arn":"arn:aws:s3:::b"},
            "object":{"key":"ingest%2Fred+flower.jpg","size":5,"eTag":"5d41402abc4b2a76b9719d911017c592"}}}]}"#;
        assert_eq!(
            object_created_events(created),
            [ObjectCreated {
                key: "ingest/red flower.jpg".into(),
                size: 5,
                etag: "5d41402abc4b2a76b9719d911017c592".into(),
            }]
        );
        let removed = created.replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert!(object_created_events(&removed).is_empty());
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-22T02:02:50.723Z","Bucket":"b"}"#;
        assert!(object_created_events(test_event).is_empty());
        assert!(object_created_events("not json").is_empty());
        // As S3 itself sends it (the recorded event), with every field.
        let recorded = include_str!("../../events/s3-put-ingest-jpg.json");
        assert_eq!(
            object_created_events(recorded),
            [ObjectCreated {
                key: "ingest/red flower.jpg".into(),
                size: 259494,
                etag: "c4ca4238a0b923820dcc509a6f75849b".into(),
            }]
        );
    }
}
