//! How a stream handler walks a batch: the item in each record's NewImage, items worked on a few at
//! a time, and Lambda's partial-batch answer.
//!
//! Records of one item are handled in order, one after another; different items run concurrently.
//! When a record of an item fails transiently, the handler stops on that item and reports the record
//! and that item's later records, so they are redelivered in order. Other items carry on: Lambda
//! resumes from the lowest reported sequence number, and what it redelivers after that point is
//! already done and costs one read.

use std::collections::HashMap;
use std::future::Future;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;

use crate::{Item, StateError};

/// Runs `step` on the item of every record (at most `concurrency` items at once) and answers with
/// the records Lambda must redeliver.
pub async fn run_batch<F, Fut>(event: Event, concurrency: usize, step: F) -> DynamoDbEventResponse
where
    F: Fn(Item) -> Fut,
    Fut: Future<Output = Result<(), StateError>>,
{
    let records = event.records;
    let step = &step;
    let records_ref = &records;
    let failed: Vec<usize> = futures::stream::iter(by_item(&records))
        .map(|indexes| async move {
            for (n, &i) in indexes.iter().enumerate() {
                let record = &records_ref[i];
                let result = match item_of(record) {
                    Ok(item) => step(item).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {}
                    Err(e) if e.is_transient() => {
                        tracing::warn!(error = %e, sequence = ?record.change.sequence_number, "will be retried");
                        return indexes[n..].to_vec();
                    }
                    // An answer, not an outage: retrying would give the same answer.
                    Err(e) => tracing::info!(error = %e, "record needs no more work"),
                }
            }
            Vec::new()
        })
        .buffer_unordered(concurrency.max(1))
        .flat_map(futures::stream::iter)
        .collect()
        .await;

    let mut failed = failed;
    failed.sort_unstable();
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|i| {
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = records[i].change.sequence_number.clone();
            f
        })
        .collect();
    response
}

/// Record indexes grouped by item key, each group in stream order, groups in order of first record.
fn by_item(records: &[EventRecord]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        let key = match record.change.keys.get("id") {
            Some(serde_dynamo::AttributeValue::S(id)) => id.clone(),
            // No key to group by: a group of its own.
            _ => format!("#{i}"),
        };
        let g = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

/// The item a record carries in its NewImage.
pub fn item_of(record: &EventRecord) -> Result<Item, StateError> {
    Item::from_image(record.change.new_image.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn record(id: &str, seq: u64, status: &str) -> serde_json::Value {
        let image = serde_json::json!({
            "id": {"S": id}, "status": {"S": status}, "bucket_name": {"S": "b"}, "object_key": {"S": "k"},
            "content_type": {"S": "image/jpeg"}, "size": {"N": "1"}, "created_at": {"N": "1"},
            "updated_at": {"N": "1"}, "history": {"L": []}
        });
        serde_json::json!({
            "eventID": seq.to_string(), "eventName": "MODIFY", "awsRegion": "local",
            "dynamodb": {"Keys": {"id": {"S": id}}, "NewImage": image, "SequenceNumber": seq.to_string(), "SizeBytes": 1}
        })
    }

    const A: &str = "0b8ef5a4-0000-4000-8000-00000000000a";
    const B: &str = "0b8ef5a4-0000-4000-8000-00000000000b";

    #[tokio::test]
    async fn a_transient_failure_stops_its_item_only_and_reports_its_later_records() {
        let event: Event = serde_json::from_value(serde_json::json!({ "Records": [
            record(A, 1, "uploaded"), record(B, 2, "uploaded"), record(A, 3, "processed"), record(B, 4, "processed"),
        ]}))
        .unwrap();
        let seen = Mutex::new(Vec::new());
        let response = run_batch(event, 2, |item| {
            seen.lock()
                .unwrap()
                .push((item.id.to_string(), item.status));
            let fail = item.id.to_string() == A;
            async move {
                if fail {
                    Err(StateError::unavailable(anyhow::anyhow!("store down")))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let failed: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .filter_map(|f| f.item_identifier)
            .collect();
        assert_eq!(
            failed,
            ["1", "3"],
            "A's failed record and A's later record; none of B's"
        );
        let seen = seen.into_inner().unwrap();
        assert!(
            !seen
                .iter()
                .any(|(id, st)| id == A && *st == crate::Status::Processed),
            "A's later record was not run"
        );
        assert_eq!(
            seen.iter().filter(|(id, _)| id == B).count(),
            2,
            "B carried on"
        );
    }

    #[tokio::test]
    async fn permanent_errors_are_not_reported() {
        let event: Event =
            serde_json::from_value(serde_json::json!({ "Records": [record(A, 1, "uploaded")] }))
                .unwrap();
        let response = run_batch(event, 1, |item| async move {
            Err(StateError::NotFound(item.id))
        })
        .await;
        assert!(response.batch_item_failures.is_empty());
    }
}
