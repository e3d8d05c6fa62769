//! How a stream handler walks a batch: the item in each record's NewImage, steps run a few at a
//! time, and Lambda's partial-batch answer.
//!
//! Lambda checkpoints at the lowest reported sequence number and redelivers everything after it, so
//! on the first transient failure the handler reports that record and every later one: records of one
//! item then stay in order, and nothing after the failure is counted as done.

use std::future::Future;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;

use crate::{Item, StateError};

/// Runs `step` on the item of every record (at most `concurrency` at once, results kept in record
/// order) and answers with the records Lambda must redeliver.
pub async fn run_batch<F, Fut>(event: Event, concurrency: usize, step: F) -> DynamoDbEventResponse
where
    F: Fn(Item) -> Fut,
    Fut: Future<Output = Result<(), StateError>>,
{
    let records = event.records;
    let items: Vec<Result<Item, StateError>> = records.iter().map(item_of).collect();
    let step = &step;
    let results: Vec<Result<(), StateError>> = futures::stream::iter(items)
        .map(|item| async move { step(item?).await })
        .buffered(concurrency.max(1))
        .collect()
        .await;

    for (record, result) in records.iter().zip(&results) {
        match result {
            Ok(()) => {}
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, sequence = ?record.change.sequence_number, "will be retried")
            }
            // An answer, not an outage: retrying would give the same answer.
            Err(e) => tracing::info!(error = %e, "record needs no more work"),
        }
    }
    let first_transient = results
        .iter()
        .position(|r| matches!(r, Err(e) if e.is_transient()));
    let mut response = DynamoDbEventResponse::default();
    if let Some(from) = first_transient {
        response.batch_item_failures = records[from..]
            .iter()
            .map(|r| {
                let mut f = DynamoDbBatchItemFailure::default();
                f.item_identifier = r.change.sequence_number.clone();
                f
            })
            .collect();
    }
    response
}

/// The item a record carries in its NewImage.
pub fn item_of(record: &EventRecord) -> Result<Item, StateError> {
    Item::from_image(record.change.new_image.clone())
}
