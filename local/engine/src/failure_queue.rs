//! The template's on-failure queues, on one machine. What a stream mapping or an asynchronous
//! invoker gives up on is kept in the data dir (its dead letters); the queue a mapping's
//! `DestinationConfig.OnFailure` names hands them out as the messages Lambda sends there, to the
//! function whose `Type: SQS` event reads that queue (the template's `failures`), through the same
//! SQS mapping as any queue's ([`event_source_mapping::queue`]):
//!
//! - a record a stream mapping gave up on is an on-failure record naming its batch
//!   (`DDBStreamBatchInfo`: its position in the engine's stream, shard `local`), which the function
//!   reads back from the stream as it does from DynamoDB Streams on AWS;
//! - an event an asynchronous invocation gave up on is the invocation record with the event in
//!   `requestPayload`.
//!
//! Lambda's `condition` is the engine's own reason for giving up (`retries exhausted: ...`), which
//! the item's stall then says. The queue's `VisibilityTimeout` and `RedrivePolicy` hold as SQS
//! applies them (`embedded_adapters::sqlite::QueuePolicy`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use embedded_adapters::sqlite::{sequence_number, DeadLetterRow, QueuePolicy, SqliteStream};
use event_source_mapping::queue::{Message, MessageQueue};
use event_source_mapping::BoxError;
use serde_json::{json, Value};

use crate::resources::ACCOUNT;

/// What a mapping or invoker gives up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// Records of the table's stream.
    Records,
    /// Asynchronous events (bucket notifications).
    Events,
}

/// A mapping or invoker whose dead letters go to a queue, and the function it invokes.
#[derive(Debug, Clone)]
pub struct Source {
    pub function: String,
    pub given: Given,
}

/// One on-failure queue, over the dead letters of its sources.
pub struct FailureQueue {
    pub stream: SqliteStream,
    pub policy: QueuePolicy,
    /// By mapping or queue name (as dead letters name them).
    pub sources: BTreeMap<String, Source>,
    pub region: String,
    pub stream_arn: String,
}

#[async_trait]
impl MessageQueue for FailureQueue {
    async fn receive(&self, limit: usize) -> Result<Vec<Message>, BoxError> {
        let letters = self
            .stream
            .receive_dead_letters(&self.policy, limit)
            .await?;
        Ok(letters
            .iter()
            .map(|letter| Message {
                id: letter.id.to_string(),
                body: self.body(letter).to_string(),
                receive_count: letter.receives,
                sent_ms: letter.created_ms,
            })
            .collect())
    }

    async fn delete(&self, id: &str) -> Result<(), BoxError> {
        let id: i64 = id.parse()?;
        self.stream.consumed_dead_letter(id).await?;
        Ok(())
    }
}

impl FailureQueue {
    /// The message Lambda would have sent for `letter`.
    fn body(&self, letter: &DeadLetterRow) -> Value {
        let (function, given) = match self.sources.get(&letter.mapping) {
            Some(source) => (source.function.as_str(), source.given),
            None => (letter.mapping.as_str(), Given::Records),
        };
        let timestamp = chrono::DateTime::from_timestamp_millis(letter.created_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let request_context = json!({
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": format!("arn:aws:lambda:{}:{ACCOUNT}:function:{function}", self.region),
            "condition": letter.reason,
            "approximateInvokeCount": 1,
        });
        match given {
            Given::Records => {
                let position = sequence_number(letter.seq);
                json!({
                    "requestContext": request_context,
                    "version": "1.0",
                    "timestamp": timestamp,
                    "DDBStreamBatchInfo": {
                        "shardId": "local",
                        "startSequenceNumber": position,
                        "endSequenceNumber": position,
                        "batchSize": 1,
                        "streamArn": self.stream_arn,
                    },
                })
            }
            Given::Events => json!({
                "requestContext": request_context,
                "version": "1.0",
                "timestamp": timestamp,
                "requestPayload": { "Records": [letter.record] },
            }),
        }
    }
}
