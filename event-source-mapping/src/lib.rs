//! Lambda's event source mapping for a DynamoDB stream, on one machine.
//!
//! A [`Dispatcher`] reads a [`RecordSource`] after its checkpoint, drops the records its
//! `FilterCriteria` do not match, delivers the rest in batches to a [`StreamFunction`] as the typed
//! event Lambda sends (`aws_lambda_events::dynamodb::Event`), and moves its checkpoint as Lambda
//! does:
//!
//! - success: the checkpoint passes the whole batch;
//! - `batchItemFailures` (with `ReportBatchItemFailures`): the checkpoint moves to just before the
//!   lowest failed sequence number and the rest is delivered again; an identifier that names no
//!   record of the batch fails the whole batch; without the setting, the answer is ignored;
//! - a function error: the whole batch is retried, halved first with `BisectBatchOnFunctionError`
//!   (halving does not use up retries);
//! - after `MaximumRetryAttempts` retries, or past `MaximumRecordAgeInSeconds`, the records go to
//!   the on-failure destination ([`Checkpoints::dead_letter`]) and the checkpoint passes them.
//!
//! There is one cursor per mapping, so the records of one item are delivered in order. The cursor,
//! and the attempt in flight, are durable ([`Checkpoints`]): a restart resumes where the mapping
//! stood, and a batch whose invocation took the process down counts as a failed attempt, so a
//! poison record is retried, bisected and dead-lettered like any other failure instead of crashing
//! the engine on every restart.
//!
//! [`async_invoke`] is the other way Lambda delivers: asynchronous invocation, as S3 bucket
//! notifications use it (one event per invocation, two retries, an age limit, a destination).
//! [`queue`] is the mapping of an SQS queue (batches of messages, partial failures kept for
//! another receive), as the failure queue's consumer uses it.
//!
//! Where records come from is the source's business: an embedded table's own stream, or DynamoDB
//! Streams read through the API ([`RecordSource`]). [`memory`] has in-memory ones for tests.

pub mod async_invoke;
mod config;
mod dispatcher;
mod function;
pub mod memory;
mod observer;
pub mod queue;
mod source;
mod target;

pub use config::MappingConfig;
pub use dispatcher::{Dispatcher, MappingRuntime, Step};
pub use function::{FunctionError, StreamFunction};
pub use observer::{NoObserver, Observer};
pub use source::{BoxError, Checkpoints, Cursor, DeadLetter, InFlight, RecordSource, SourceRecord};
pub use target::{Backoff, Target};

/// A dispatcher could not read its source or keep its checkpoint; it retries the step later.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{mapping}: reading the record source: {source}")]
    Source {
        mapping: String,
        #[source]
        source: BoxError,
    },
    #[error("{mapping}: keeping the checkpoint: {source}")]
    Checkpoint {
        mapping: String,
        #[source]
        source: BoxError,
    },
}
