//! The engine's AWS backend against DynamoDB Local: the table's real stream, mirrored into the
//! local stream, carries records the template's filters pick exactly as they pick the recorded
//! events in events/. (The adapters' own contract suite is in `adapters/aws/tests`.)

use std::sync::Arc;

use aws_adapters::streams::StreamReader;
use aws_adapters::testing::{create_table, endpoints, sdk, unique};
use aws_adapters::DynamoTable;
use embedded_adapters::sqlite::{Database, SqliteStream};
use event_source_mapping::RecordSource;
use local::TEMPLATE as EMBEDDED;
use local_engine::backend::aws::Mirror;
use sam_template::Template;
use state::{transition, Item, ItemTable, Status};

#[tokio::test]
async fn the_mirrored_stream_is_filtered_as_the_recorded_events_are() {
    let Some((ddb_endpoint, _)) = endpoints() else {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    };
    let config = sdk(&ddb_endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let name = unique("images");
    create_table(&client, &name).await;
    let table = DynamoTable::new(client.clone(), &name);
    let item = state::contract::new_item();
    table.insert(&item).await.unwrap();
    transition::processed(&table, item.id, state::contract::facts())
        .await
        .unwrap();
    transition::notified(&table, item.id, "m-1".into())
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("mirror.db")).unwrap();
    let arn = StreamReader::stream_arn_of(&client, &name).await.unwrap();
    let reader = Arc::new(StreamReader::new(
        aws_sdk_dynamodbstreams::Client::new(&config),
        arn,
    ));
    let mirror = Mirror::new(reader, db.clone());
    assert_eq!(mirror.poll().await.unwrap(), 3);
    assert_eq!(mirror.poll().await.unwrap(), 0, "nothing is mirrored twice");

    let records = SqliteStream::new(db.clone()).read(0, 10).await.unwrap();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r.record["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY", "MODIFY"]);
    // Typed as Lambda's event, each record carries the item and its own sequence number.
    let event: aws_lambda_events::dynamodb::Event = serde_json::from_value(
        serde_json::json!({ "Records": records.iter().map(|r| &r.record).collect::<Vec<_>>() }),
    )
    .unwrap();
    let statuses: Vec<Status> = event
        .records
        .iter()
        .map(|r| Item::from_image(r.change.new_image.clone()).unwrap().status)
        .collect();
    assert_eq!(
        statuses,
        [Status::Uploaded, Status::Processed, Status::Notified]
    );
    assert!(event
        .records
        .iter()
        .all(|r| r.change.sequence_number.is_some()));

    // The template's filters pick the same records from the real stream as from events/.
    let template = Template::parse(EMBEDDED, &Default::default()).unwrap();
    let matches = |binary: &str| -> Vec<bool> {
        let filters = &template.mappings(binary)[0].filters;
        records.iter().map(|r| filters.matches(&r.record)).collect()
    };
    assert_eq!(matches("process"), [true, false, false]);
    assert_eq!(matches("notice"), [false, true, false]);
}
