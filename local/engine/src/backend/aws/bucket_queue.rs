//! The bucket's notifications on the AWS backend, which S3 cannot deliver to a function on this
//! machine: routed to an SQS queue, read from there.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;

use crate::bucket::BucketEvents;
use crate::runner::{Pace, Runner};

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
            Some(ObjectCreated {
                // URL-encoded, spaces as `+`, as S3 sends them.
                key: crate::bucket::decoded_key(&r.s3.object.key)?,
                size: r.s3.object.size,
                etag: r.s3.object.etag.trim_matches('"').to_owned(),
            })
        })
        .collect()
}

/// Takes the bucket's notifications from their SQS queue (a long poll of a second) and queues
/// them for the functions the template's rules name, as S3 would invoke them.
pub struct BucketQueueRunner {
    pub queue: BucketEventQueue,
    pub bucket: Arc<BucketEvents>,
}

#[async_trait]
impl Runner for BucketQueueRunner {
    fn name(&self) -> &str {
        "bucket notifications"
    }

    async fn step(&self) -> anyhow::Result<Pace> {
        self.queue
            .poll(|event| async move {
                let held = self
                    .bucket
                    .object_created(&event.key, event.size, &event.etag)
                    .await?;
                self.bucket.released(held).await?;
                Ok(())
            })
            .await?;
        Ok(Pace::Busy)
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn drains(&self) -> bool {
        false
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
        let recorded = include_str!("../../../../../events/s3-put-ingest-jpg.json");
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
