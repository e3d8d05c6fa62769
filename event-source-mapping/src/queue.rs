//! Lambda's event source mapping for an SQS queue, as the failure queue's consumer uses it: the
//! mapping receives up to `BatchSize` messages, invokes the function once with them (the typed
//! `aws_lambda_events` SQS event), and deletes what was handled:
//!
//! - success: every message is deleted, except, with `ReportBatchItemFailures`, those the answer's
//!   `batchItemFailures` name (an identifier that names no message of the batch fails the whole
//!   batch, as Lambda does);
//! - a function error: none is deleted.
//!
//! A message that is not deleted comes back once the queue's visibility timeout has passed; what
//! happens after too many receives (the redrive policy's move to a dead-letter queue) is the
//! queue's own business ([`MessageQueue`]), as it is SQS's.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use crate::{BoxError, FunctionError, Observer, Target};

/// One SQS event source mapping's settings (a SAM `Type: SQS` event).
#[derive(Debug, Clone)]
pub struct QueueMappingConfig {
    /// Names the mapping, e.g. `FailuresFunction.Failures`.
    pub name: String,
    /// The queue's logical id.
    pub queue: String,
    /// `BatchSize`: at most this many messages per invocation.
    pub batch_size: usize,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
}

/// One message as received: its id, body, and how often it has been received (this time too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub receive_count: u32,
    /// When it was sent, epoch ms.
    pub sent_ms: i64,
}

/// A queue as a mapping reads it.
#[async_trait]
pub trait MessageQueue: Send + Sync {
    /// Up to `limit` visible messages, each hidden for the queue's visibility timeout from now.
    async fn receive(&self, limit: usize) -> Result<Vec<Message>, BoxError>;
    /// The message was handled: it goes.
    async fn delete(&self, id: &str) -> Result<(), BoxError>;
}

/// A function invoked with batches of queue messages.
#[async_trait]
pub trait QueueFunction: Send + Sync {
    async fn invoke(&self, event: SqsEvent) -> Result<SqsBatchResponse, FunctionError>;
}

/// What one [`QueuePoller::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// No visible message.
    Nothing,
    /// A batch was delivered.
    Delivered,
}

/// What a queue mapping runs on: its queue, and who is told what it does.
#[derive(Clone)]
pub struct QueueRuntime {
    pub queue: Arc<dyn MessageQueue>,
    pub observer: Arc<dyn Observer>,
}

/// One SQS event source mapping at work. Call [`QueuePoller::step`] in a loop.
pub struct QueuePoller {
    function: String,
    config: Arc<QueueMappingConfig>,
    queue: Arc<dyn MessageQueue>,
    target: Arc<dyn QueueFunction>,
    observer: Arc<dyn Observer>,
}

impl QueuePoller {
    /// `target.name` labels what the observer reports.
    pub fn new(
        target: Target<dyn QueueFunction>,
        config: Arc<QueueMappingConfig>,
        runtime: QueueRuntime,
    ) -> QueuePoller {
        QueuePoller {
            function: target.name,
            config,
            queue: runtime.queue,
            target: target.function,
            observer: runtime.observer,
        }
    }

    pub fn config(&self) -> &QueueMappingConfig {
        &self.config
    }

    /// Receives one batch and delivers it.
    pub async fn step(&self) -> Result<Received, BoxError> {
        let messages = self.queue.receive(self.config.batch_size).await?;
        if messages.is_empty() {
            return Ok(Received::Nothing);
        }
        let now = crate::async_invoke::now_ms();
        let oldest = messages.iter().map(|m| m.sent_ms).min().unwrap_or(now);
        let f = self.function.as_str();
        self.observer
            .invoked(f, messages.len(), (now - oldest).max(0) as f64 / 1000.0);
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(sqs_message).collect();
        let started = Instant::now();
        let result = self.target.invoke(event).await;
        self.observer.duration(f, started.elapsed().as_secs_f64());
        let kept: Vec<String> = match result {
            Ok(_) if !self.config.report_batch_item_failures => Vec::new(),
            Ok(response) => {
                let kept: Vec<String> = response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect();
                if kept.iter().any(|id| !messages.iter().any(|m| &m.id == id)) {
                    tracing::warn!(function = f, ?kept, "a batch item failure names no message of the batch: the whole batch failed");
                    messages.iter().map(|m| m.id.clone()).collect()
                } else {
                    kept
                }
            }
            Err(error) => {
                tracing::warn!(function = f, %error, "queue batch failed; its messages come back after the visibility timeout");
                messages.iter().map(|m| m.id.clone()).collect()
            }
        };
        if !kept.is_empty() {
            self.observer.error(f);
        }
        for message in messages.iter().filter(|m| !kept.contains(&m.id)) {
            self.queue.delete(&message.id).await?;
        }
        Ok(Received::Delivered)
    }
}

/// A message as Lambda hands it to the function.
fn sqs_message(m: &Message) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(m.id.clone());
    message.receipt_handle = Some(m.id.clone());
    message.body = Some(m.body.clone());
    message.event_source = Some("aws:sqs".into());
    message.aws_region = Some("local".into());
    message.attributes.insert(
        "ApproximateReceiveCount".into(),
        m.receive_count.to_string(),
    );
    message
        .attributes
        .insert("SentTimestamp".into(), m.sent_ms.to_string());
    message
}
