//! The AWS adapters against AWS's APIs on loopback: DynamoDB Local for the table and its stream,
//! moto for S3, SNS and SQS.

use local::aws_stream::StreamTailer;
use local::db::Database;
use local::template::{Template, EMBEDDED};
use state::aws::{DynamoTable, S3Store, SnsNotifier};
use state::{
    transition, ImageId, Item, ItemTable, NewUpload, Notice, Notifier, ObjectStore, Outcome,
    ProcessedFacts, StateError, Status,
};

use crate::stand_ins::{create_table, sdk, unique, AwsWorld};
use crate::stand_ins_or_skip;

fn new_item() -> Item {
    Item::uploaded(
        NewUpload {
            id: ImageId::generate(),
            bucket_name: "b".into(),
            object_key: "uploads/x.jpg".into(),
            content_type: "image/jpeg".into(),
            size: 1234,
        },
        state::now_ms(),
    )
}

fn facts() -> ProcessedFacts {
    ProcessedFacts {
        width: 640,
        height: 480,
        format: "jpeg".into(),
        renditions: [(
            "thumbnail".to_owned(),
            "processed/x/thumbnail.jpg".to_owned(),
        )]
        .into(),
        exif: [("Make".to_owned(), "Canon".to_owned())].into(),
    }
}

#[tokio::test]
async fn dynamodb_table_enforces_each_transition_as_a_conditional_write() {
    let (ddb_endpoint, _) = stand_ins_or_skip!();
    let client = aws_sdk_dynamodb::Client::new(&sdk(&ddb_endpoint).await);
    let name = unique("images");
    create_table(&client, &name).await;
    let table = DynamoTable::new(client, &name);

    let item = new_item();
    table.insert(&item).await.unwrap();
    assert!(matches!(table.insert(&item).await, Err(StateError::Duplicate(id)) if id == item.id));
    assert_eq!(table.get(item.id).await.unwrap().as_ref(), Some(&item));
    assert_eq!(table.get(ImageId::generate()).await.unwrap(), None);

    let processed = transition::processed(&table, item.id, facts())
        .await
        .unwrap();
    let Outcome::Applied(after) = &processed else {
        panic!("{processed:?}")
    };
    assert_eq!(
        (after.status, after.width, after.height),
        (Status::Processed, Some(640), Some(480))
    );
    assert_eq!(after.exif.as_ref().unwrap()["Make"], "Canon");
    assert_eq!(
        after.history.iter().map(|h| h.status).collect::<Vec<_>>(),
        [Status::Uploaded, Status::Processed]
    );

    // A replayed record: the condition fails, and the item as it is comes back.
    let again = transition::processed(&table, item.id, facts())
        .await
        .unwrap();
    assert_eq!(again, Outcome::AlreadyDone(after.clone()));
    // A late failure after success is a conflict, and writes nothing.
    let late = transition::failed(&table, item.id, Status::Uploaded, "late".into())
        .await
        .unwrap_err();
    assert!(
        matches!(
            late,
            StateError::Conflict {
                found: Status::Processed,
                ..
            }
        ),
        "{late}"
    );

    let notified = transition::notified(&table, item.id, "m-1".into())
        .await
        .unwrap();
    assert_eq!(notified.item().status, Status::Notified);
    assert_eq!(notified.item().message_id.as_deref(), Some("m-1"));
    let missing = transition::notified(&table, ImageId::generate(), "m".into())
        .await
        .unwrap_err();
    assert!(matches!(missing, StateError::NotFound(_)), "{missing}");

    let other = new_item();
    table.insert(&other).await.unwrap();
    let listed: Vec<ImageId> = table.list(10).await.unwrap().iter().map(|i| i.id).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&item.id) && listed.contains(&other.id));
    assert_eq!(table.list(1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_stream_reader_mirrors_records_as_lambda_delivers_them() {
    let (ddb_endpoint, _) = stand_ins_or_skip!();
    let config = sdk(&ddb_endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let name = unique("images");
    create_table(&client, &name).await;
    let table = DynamoTable::new(client.clone(), &name);
    let item = new_item();
    table.insert(&item).await.unwrap();
    transition::processed(&table, item.id, facts())
        .await
        .unwrap();
    transition::notified(&table, item.id, "m-1".into())
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("mirror.db")).unwrap();
    let arn = StreamTailer::stream_arn_of(&client, &name).await.unwrap();
    let tailer = StreamTailer::new(
        aws_sdk_dynamodbstreams::Client::new(&config),
        arn,
        db.clone(),
    );
    assert_eq!(tailer.poll().await.unwrap(), 3);
    assert_eq!(
        tailer.poll().await.unwrap(),
        0,
        "a second poll reads nothing twice"
    );

    let records = db.read_stream(0, 10).await.unwrap();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r.record["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY", "MODIFY"]);
    // Typed as Lambda's event, each record carries the item.
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
        let filters = &template.mapping(binary).unwrap().filters;
        records.iter().map(|r| filters.matches(&r.record)).collect()
    };
    assert_eq!(matches("process"), [true, false, false]);
    assert_eq!(matches("notice"), [false, true, false]);

    // More writes later are picked up after the ones already read.
    let second = new_item();
    table.insert(&second).await.unwrap();
    assert_eq!(tailer.poll().await.unwrap(), 1);
    let all = db.read_stream(0, 10).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].item_id, second.id.to_string());
}

#[tokio::test]
async fn s3_store_puts_and_gets_and_names_a_missing_key() {
    let eps = stand_ins_or_skip!();
    let world = AwsWorld::create(eps).await;
    let store = S3Store::new(world.s3.clone(), &world.bucket);
    store
        .put(
            "uploads/a.jpg",
            bytes::Bytes::from_static(b"\xFF\xD8\xFFabc"),
            "image/jpeg",
        )
        .await
        .unwrap();
    assert_eq!(
        &store.get("uploads/a.jpg").await.unwrap()[..],
        b"\xFF\xD8\xFFabc"
    );
    let head = world
        .s3
        .head_object()
        .bucket(&world.bucket)
        .key("uploads/a.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("image/jpeg"));
    assert!(
        matches!(store.get("uploads/none.jpg").await, Err(StateError::ObjectMissing(k)) if k == "uploads/none.jpg")
    );
}

#[tokio::test]
async fn sns_notifier_publishes_what_the_subscriber_receives() {
    let eps = stand_ins_or_skip!();
    let world = AwsWorld::create(eps).await;
    let notifier = SnsNotifier::new(world.sns.clone(), &world.topic_arn);
    let notice = Notice {
        dedup_key: "x/notified".into(),
        subject: "Image processed: x".into(),
        body: "id: x\n".into(),
    };
    let message_id = notifier.publish(&notice).await.unwrap();
    let received = world.take_notices().await;
    assert_eq!(received, vec![(notice.subject, notice.body, message_id)]);
}

#[tokio::test]
async fn an_unreachable_table_is_a_transient_error() {
    // Nothing listens on this port: the adapter must say "unavailable", which handlers retry.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = sdk(&format!("http://127.0.0.1:{port}")).await;
    let table = DynamoTable::new(aws_sdk_dynamodb::Client::new(&config), "nothing");
    let err = table.get(ImageId::generate()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
}
