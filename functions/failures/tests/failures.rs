//! The failure-queue consumer: the recorded on-failure message parses as Lambda sends it, and on
//! DynamoDB Local the given-up records are read back from the real stream and their items marked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_adapters::streams::{ReadRecord, ShardLog, ShardPosition, StreamReader};
use aws_adapters::testing::{create_table, endpoints, sdk, unique};
use aws_adapters::DynamoTable;
use aws_lambda_events::sqs::SqsEvent;
use failures::{handle, Deps, OnFailure};
use lambda_runtime::{Context, LambdaEvent};
use state::{ItemTable, Status};

fn recorded() -> SqsEvent {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/sqs-stream-failure.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_recorded_failure_message_names_the_batch_the_function_and_why() {
    let event = recorded();
    let body = event.records[0].body.as_deref().unwrap();
    let failure: OnFailure = serde_json::from_str(body).unwrap();
    assert_eq!(
        failure.batch.start_sequence_number,
        "1000000000000000000800"
    );
    assert_eq!(
        failure.reason(),
        "RetryAttemptsExhausted (function error: Unhandled)"
    );
    let names = HashMap::from([(
        "image-pipeline-ProcessFunction-7Xh3kQp2LmNa".to_owned(),
        "process".to_owned(),
    )]);
    assert_eq!(failure.function(&names), "process");
    assert_eq!(
        failure.function(&HashMap::new()),
        "image-pipeline-ProcessFunction-7Xh3kQp2LmNa"
    );
}

/// Keeps what a stream reader reads, to learn the real shard and sequence numbers.
#[derive(Default)]
struct Log(Mutex<Vec<(String, ReadRecord)>>);

#[async_trait::async_trait]
impl ShardLog for Log {
    async fn positions(&self) -> anyhow::Result<HashMap<String, ShardPosition>> {
        Ok(HashMap::new())
    }
    async fn append(
        &self,
        shard_id: &str,
        records: Vec<ReadRecord>,
        _: ShardPosition,
    ) -> anyhow::Result<()> {
        let mut all = self.0.lock().unwrap();
        all.extend(records.into_iter().map(|r| (shard_id.to_owned(), r)));
        Ok(())
    }
}

fn message(id: &str, shard: &str, first: &str, last: &str, stream_arn: &str) -> serde_json::Value {
    let body = serde_json::json!({
        "requestContext": {
            "requestId": "r-1",
            "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:stack-ProcessFunction-X",
            "condition": "RecordAgeExceeded",
            "approximateInvokeCount": 0
        },
        "version": "1.0",
        "timestamp": "2026-11-21T00:00:00Z",
        "DDBStreamBatchInfo": {
            "shardId": shard, "startSequenceNumber": first, "endSequenceNumber": last,
            "batchSize": 2, "streamArn": stream_arn
        }
    });
    serde_json::json!({ "messageId": id, "body": body.to_string(), "eventSource": "aws:sqs" })
}

#[tokio::test]
async fn given_up_records_are_read_back_from_the_stream_and_their_items_marked() {
    let Some((ddb_endpoint, _)) = endpoints() else {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    };
    let config = sdk(&ddb_endpoint).await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let name = unique("images");
    create_table(&ddb, &name).await;
    let table: Arc<dyn ItemTable> = Arc::new(DynamoTable::new(ddb.clone(), &name));
    let (a, b, c) = (
        state::contract::new_item(),
        state::contract::new_item(),
        state::contract::new_item(),
    );
    for item in [&a, &b, &c] {
        table.insert(item).await.unwrap();
    }
    // `b` moved on after its record was given up on: it is not marked.
    state::transition::failed(table.as_ref(), b.id, Status::Uploaded, "bad".into())
        .await
        .unwrap();

    let arn = StreamReader::stream_arn_of(&ddb, &name).await.unwrap();
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let log = Log::default();
    StreamReader::new(streams.clone(), arn.clone())
        .poll(&log)
        .await
        .unwrap();
    let read = log.0.lock().unwrap().clone();
    assert_eq!(read.len(), 4, "three INSERTs and b's failure");
    let seq = |i: usize| read[i].1.record.change.sequence_number.clone().unwrap();
    let shard = read[0].0.clone();

    // The mapping gave up on the INSERTs of a and b (c's was fine).
    let event: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": [
        message("m-1", &shard, &seq(0), &seq(1), &arn),
    ]}))
    .unwrap();
    let mut functions = HashMap::new();
    functions.insert("stack-ProcessFunction-X".to_owned(), "process".to_owned());
    let deps = Deps {
        table: table.clone(),
        records: Arc::new(StreamReader::new(streams, String::new())),
        functions,
    };
    let response = handle(LambdaEvent::new(event, Context::default()), &deps)
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());

    let marked = table.get(a.id).await.unwrap().unwrap();
    let stall = marked.stall().expect("a is marked");
    assert_eq!(stall.function, "process");
    assert_eq!(stall.reason, "RecordAgeExceeded");
    assert_eq!(marked.status, Status::Uploaded);
    assert_eq!(table.get(b.id).await.unwrap().unwrap().stall(), None);
    assert_eq!(table.get(c.id).await.unwrap().unwrap().stall(), None);

    // A message naming records the stream does not hold is kept (reported), not dropped.
    let gone: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": [
        message("m-2", "shardId-00000000000000000000-00000000", "1", "2", &arn),
        { "messageId": "m-3", "body": "not json" },
    ]}))
    .unwrap();
    let response = handle(LambdaEvent::new(gone, Context::default()), &deps)
        .await
        .unwrap();
    let kept: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(kept, ["m-2", "m-3"]);
}

/// Records nothing: the asynchronous failures carry their event.
struct NoStream;

#[async_trait::async_trait]
impl state::GivenUpRecords for NoStream {
    async fn records(
        &self,
        _: &state::GivenUpBatch,
    ) -> Result<Vec<aws_lambda_events::dynamodb::EventRecord>, state::StateError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_bucket_event_ingest_gave_up_on_marks_its_reservation() {
    let table = Arc::new(state::memory::MemoryTable::default());
    let id = state::ImageId::generate();
    let reservation = state::Item::pending(
        state::NewUpload {
            id,
            bucket_name: "b".into(),
            object_key: format!("incoming/{id}"),
            content_type: "image/jpeg".into(),
            size: 10,
        },
        state::now_ms(),
        4_102_444_800,
    );
    table.insert(&reservation).await.unwrap();
    let s3 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/s3-put-incoming.json"
    ))
    .unwrap()
    .replace("0b8ef5a4-6d1e-4c2a-9f3b-2a7c5e9d1f60", &id.to_string());
    let body = serde_json::json!({
        "version": "1.0",
        "timestamp": "2026-11-21T00:00:00Z",
        "requestContext": {
            "requestId": "r-2",
            "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:stack-IngestFunction-Y:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": serde_json::from_str::<serde_json::Value>(&s3).unwrap(),
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
        "responsePayload": { "errorMessage": "IngestError: unavailable" }
    });
    let event: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": [
        { "messageId": "m-4", "body": body.to_string() }
    ]}))
    .unwrap();
    let deps = Deps {
        table: table.clone(),
        records: Arc::new(NoStream),
        functions: HashMap::from([("stack-IngestFunction-Y".to_owned(), "ingest".to_owned())]),
    };
    let response = handle(LambdaEvent::new(event, Context::default()), &deps)
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let stall = table.get(id).await.unwrap().unwrap().stall().unwrap();
    assert_eq!(stall.function, "ingest");
    assert_eq!(stall.reason, "RetriesExhausted (function error: Unhandled)");
}
