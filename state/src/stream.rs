//! How a stream handler walks a batch: the item in each record's NewImage, items worked on a few at
//! a time, and Lambda's partial-batch answer.
//!
//! Records of one item are handled in order, one after another; different items run concurrently.
//! When a record of an item fails transiently, the handler stops on that item and reports the record
//! and that item's later records, so they are redelivered in order. Other items carry on: Lambda
//! resumes from the lowest reported sequence number, and what it redelivers after that point is
//! already done and costs one read.
//!
//! One module of some 300 lines and its tests (the rest): the batch walk and the record
//! rendering it reads are one subject.

use std::collections::HashMap;
use std::future::Future;

use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord, StreamViewType};
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

/// Marks the item of a record a function gave up on (a dead letter, a failure-queue message) as
/// stalled, if it is still at the status the record shows; `false` if it moved on. The failure
/// consumers call this: the engine's for its dead letters, the `failures` function on AWS.
pub async fn mark_given_up(
    table: &dyn crate::ItemTable,
    record: &EventRecord,
    function: &str,
    reason: &str,
) -> Result<bool, StateError> {
    let item = item_of(record)?;
    let stall = crate::Stall::new(function, reason, crate::now_ms());
    let marked = table.mark_stalled(item.id, item.status, &stall).await?;
    if marked {
        tracing::warn!(image_id = %item.id, function, reason, "item marked stalled");
    }
    Ok(marked)
}

/// The item a record carries in its NewImage.
pub fn item_of(record: &EventRecord) -> Result<Item, StateError> {
    Item::from_image(record.change.new_image.clone())
}

/// What a table write did to an item, as DynamoDB Streams names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Insert,
    Modify,
    Remove,
}

impl Change {
    pub fn event_name(self) -> &'static str {
        match self {
            Change::Insert => "INSERT",
            Change::Modify => "MODIFY",
            Change::Remove => "REMOVE",
        }
    }
}

/// The record a `NEW_AND_OLD_IMAGES` stream holds for one change of an item: keys, the images
/// before and after (each absent where the change has none), and when. Its position
/// (`SequenceNumber`, `eventID`) is the stream's to give.
pub fn change_record(
    change: Change,
    old: Option<&Item>,
    new: Option<&Item>,
    at_ms: i64,
    region: &str,
    stream_arn: &str,
) -> EventRecord {
    let mut record = unsized_record(change, old, new, at_ms, region, stream_arn);
    record.change.size_bytes = json_len(&lambda_json(&record));
    record
}

/// [`change_record`] as the JSON text Lambda delivers ([`lambda_json`]), written straight from the
/// items: what a stream that stores records as JSON appends. The same JSON as the typed record
/// turned into a `serde_json::Value`, without building that tree (which, with its drop, was most of
/// a transition's record under load).
pub fn change_record_json(
    change: Change,
    old: Option<&Item>,
    new: Option<&Item>,
    at_ms: i64,
    region: &str,
    stream_arn: &str,
) -> String {
    let id = new.or(old).map(|i| i.id.to_string()).unwrap_or_default();
    let record = StoredRecord {
        aws_region: region,
        dynamodb: StoredChange {
            approximate_creation_date_time: chrono::DateTime::from_timestamp_millis(at_ms)
                .unwrap_or_default()
                .timestamp(),
            keys: HashMap::from([("id", HashMap::from([("S", id.as_str())]))]),
            new_image: new.map(Item::to_image),
            old_image: old.map(Item::to_image),
            size_bytes: 0,
            stream_view_type: "NEW_AND_OLD_IMAGES",
        },
        event_id: "",
        event_name: change.event_name(),
        event_source: "aws:dynamodb",
        event_source_arn: stream_arn,
        event_version: "1.1",
    };
    // `SizeBytes` is the size of the record's JSON with `SizeBytes` 0, as [`change_record`] has it:
    // written once with 0, then the 0 replaced. It is the last field but one of `dynamodb`, after
    // the images, and in them every value is an object, so the last match is that field.
    let zero = serde_json::to_string(&record).expect("a stream record serialises");
    const SIZE: &str = "\"SizeBytes\":0,\"StreamViewType\"";
    let at = zero.rfind(SIZE).expect("a stream record has SizeBytes") + "\"SizeBytes\":".len();
    let size = zero.len().to_string();
    let mut json = String::with_capacity(zero.len() + size.len());
    json.push_str(&zero[..at]);
    json.push_str(&size);
    json.push_str(&zero[at + 1..]);
    json
}

/// The fields [`lambda_json`] keeps of a change record, in its names.
#[derive(serde::Serialize)]
struct StoredRecord<'a> {
    #[serde(rename = "awsRegion")]
    aws_region: &'a str,
    dynamodb: StoredChange<'a>,
    #[serde(rename = "eventID")]
    event_id: &'a str,
    #[serde(rename = "eventName")]
    event_name: &'a str,
    #[serde(rename = "eventSource")]
    event_source: &'a str,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: &'a str,
    #[serde(rename = "eventVersion")]
    event_version: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct StoredChange<'a> {
    approximate_creation_date_time: i64,
    keys: HashMap<&'a str, HashMap<&'a str, &'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_image: Option<serde_dynamo::Item>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_image: Option<serde_dynamo::Item>,
    size_bytes: i64,
    stream_view_type: &'a str,
}

/// The record with `SizeBytes` 0: its size is that of its own JSON, which needs the rest first.
fn unsized_record(
    change: Change,
    old: Option<&Item>,
    new: Option<&Item>,
    at_ms: i64,
    region: &str,
    stream_arn: &str,
) -> EventRecord {
    let id = new.or(old).map(|i| i.id.to_string()).unwrap_or_default();
    let mut stream = StreamRecord::default();
    stream.approximate_creation_date_time =
        chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    stream.keys = serde_dynamo::Item::from(std::collections::HashMap::from([(
        "id".to_owned(),
        serde_dynamo::AttributeValue::S(id),
    )]));
    if let Some(old) = old {
        stream.old_image = old.to_image();
    }
    if let Some(new) = new {
        stream.new_image = new.to_image();
    }
    stream.stream_view_type = Some(StreamViewType::NewAndOldImages);
    let mut record = EventRecord::default();
    record.aws_region = region.to_owned();
    record.event_name = change.event_name().to_owned();
    record.event_source = Some("aws:dynamodb".to_owned());
    record.event_source_arn = Some(stream_arn.to_owned());
    record.event_version = Some("1.1".to_owned());
    record.change = stream;
    record
}

/// Bytes of `json` written compactly, counted without building the string.
fn json_len(json: &serde_json::Value) -> i64 {
    let mut count = Count(0);
    serde_json::to_writer(&mut count, json).expect("a JSON value serialises");
    count.0 as i64
}

/// A writer that only counts what it is given.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A record as the JSON Lambda delivers: an image the change does not have (no `OldImage` on an
/// INSERT, no `NewImage` on a REMOVE) is left out, as DynamoDB Streams leaves it out, rather than
/// written as an empty map.
pub fn lambda_json(record: &EventRecord) -> serde_json::Value {
    let mut json = serde_json::to_value(record).expect("a stream record serialises");
    if let Some(change) = json.get_mut("dynamodb").and_then(|c| c.as_object_mut()) {
        for key in ["OldImage", "NewImage"] {
            if change
                .get(key)
                .and_then(|v| v.as_object())
                .is_some_and(|m| m.is_empty())
            {
                change.remove(key);
            }
        }
        change.retain(|_, v| !v.is_null());
    }
    if let Some(top) = json.as_object_mut() {
        top.retain(|_, v| !v.is_null());
    }
    json
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

    #[test]
    fn a_change_records_json_built_once_is_the_records_own() {
        let old = Item::uploaded(
            crate::NewUpload {
                id: crate::ImageId::generate(),
                bucket_name: "b".into(),
                object_key: "uploads/x.jpg".into(),
                content_type: "image/jpeg".into(),
                size: 3,
            },
            1_700_000_000_000,
        );
        let mut new = old.clone();
        new.status = crate::Status::Processed;
        // Every kind of attribute, and text that needs escaping.
        new.width = Some(640);
        new.renditions = Some([("thumbnail".into(), "processed/x/t.jpg".into())].into());
        new.exif = Some(
            [
                ("model".into(), "Ca\"non \\ é\n\u{1}".into()),
                // What the size is written into, as text of an attribute.
                ("note".into(), "\"SizeBytes\":0,\"StreamViewType\"".into()),
            ]
            .into(),
        );
        new.placeholder = Some("3PcNNYSFeXh/d3eld0iHZoZgVwh2".into());
        new.ttl = Some(1_700_000_600);
        new.stalled_at = Some(-5);
        for (change, old, new) in [
            (Change::Insert, None, Some(&old)),
            (Change::Modify, Some(&old), Some(&new)),
            (Change::Remove, Some(&new), None),
        ] {
            let record = change_record(change, old, new, 1_700_000_000_123, "local", "arn:s");
            let json: serde_json::Value = serde_json::from_str(&change_record_json(
                change,
                old,
                new,
                1_700_000_000_123,
                "local",
                "arn:s",
            ))
            .unwrap();
            assert_eq!(json, lambda_json(&record), "{change:?}");
            let size = json["dynamodb"]["SizeBytes"].as_i64().unwrap();
            let mut unsized_json = json.clone();
            unsized_json["dynamodb"]["SizeBytes"] = 0.into();
            assert_eq!(size, unsized_json.to_string().len() as i64, "{change:?}");
            let back: EventRecord = serde_json::from_value(json).unwrap();
            assert_eq!(back.event_name, change.event_name());
        }
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
