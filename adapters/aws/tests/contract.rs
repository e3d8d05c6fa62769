//! The contract suite on AWS's APIs served on loopback: DynamoDB Local for the table, moto for S3
//! and SNS (an SQS queue subscribed to the topic gets the document; the email's text is what moto
//! recorded of the same publish). `make test` starts both; a plain `cargo test` skips these, saying
//! so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_adapters::streams::{ReadRecord, ShardLog, ShardPosition, StreamReader};
use aws_adapters::testing::{available, create_table, endpoints, sdk, unique, AwsWorld};
use aws_adapters::{DynamoTable, S3Store, SnsNotifier};
use state::contract::{Received, Subscriber};
use state::{transition, ImageId, Item, ItemTable, Notifier, ObjectStore, Status};

async fn table() -> Arc<dyn ItemTable> {
    let (ddb_endpoint, _) = endpoints().expect("the stand-ins");
    let client = aws_sdk_dynamodb::Client::new(&sdk(&ddb_endpoint).await);
    let name = unique("images");
    create_table(&client, &name).await;
    Arc::new(DynamoTable::new(client, name))
}

async fn store() -> Arc<dyn ObjectStore> {
    let world = AwsWorld::create(endpoints().expect("the stand-ins")).await;
    Arc::new(S3Store::new(world.s3.clone(), world.bucket.clone()))
}

// Each property case is a few round trips to DynamoDB Local: fewer cases than in memory.
state::table_contract!(table, 24, if aws_adapters::testing::available);
state::store_contract!(store, if aws_adapters::testing::available);

struct Topic {
    world: AwsWorld,
}

#[async_trait::async_trait]
impl Subscriber for Topic {
    fn notifier(&self) -> Arc<dyn Notifier> {
        Arc::new(SnsNotifier::new(
            self.world.sns.clone(),
            self.world.topic_arn.clone(),
        ))
    }

    /// The SQS subscriber's envelopes, with the email's part of the same publish (moto keeps it).
    async fn received(&self) -> Vec<Received> {
        self.world
            .take_deliveries()
            .await
            .into_iter()
            .map(|d| Received {
                subject: d.subject,
                body: d.email,
                document: Some(d.document),
            })
            .collect()
    }
}

async fn topic() -> Arc<dyn Subscriber> {
    Arc::new(Topic {
        world: AwsWorld::create(endpoints().expect("the stand-ins")).await,
    })
}

#[test]
fn sns_delivers_what_is_published() {
    if state::contract::skip(available()) {
        return;
    }
    state::contract::run_notifier(topic);
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

/// A shard log in memory.
#[derive(Default)]
struct Log {
    records: Mutex<Vec<ReadRecord>>,
    positions: Mutex<HashMap<String, ShardPosition>>,
}

#[async_trait::async_trait]
impl ShardLog for Log {
    async fn positions(&self) -> anyhow::Result<HashMap<String, ShardPosition>> {
        Ok(self.positions.lock().unwrap().clone())
    }

    async fn append(
        &self,
        shard_id: &str,
        records: Vec<ReadRecord>,
        position: ShardPosition,
    ) -> anyhow::Result<()> {
        self.records.lock().unwrap().extend(records);
        let mut positions = self.positions.lock().unwrap();
        let entry = positions.entry(shard_id.to_owned()).or_default();
        if position.last_sequence.is_some() {
            entry.last_sequence = position.last_sequence;
        }
        entry.done = position.done;
        Ok(())
    }
}

#[tokio::test]
async fn the_stream_reader_reads_each_record_once_as_lambda_delivers_it() {
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

    let arn = StreamReader::stream_arn_of(&client, &name).await.unwrap();
    let reader = StreamReader::new(aws_sdk_dynamodbstreams::Client::new(&config), arn);
    let log = Log::default();
    assert_eq!(reader.poll(&log).await.unwrap(), 2);
    assert_eq!(reader.poll(&log).await.unwrap(), 0, "nothing is read twice");
    let second = state::contract::new_item();
    table.insert(&second).await.unwrap();
    assert_eq!(reader.poll(&log).await.unwrap(), 1);

    let records = log.records.lock().unwrap().clone();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r.record.event_name.as_str())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY", "INSERT"]);
    let statuses: Vec<Status> = records
        .iter()
        .map(|r| {
            Item::from_image(r.record.change.new_image.clone())
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(
        statuses,
        [Status::Uploaded, Status::Processed, Status::Uploaded]
    );
    assert!(records
        .iter()
        .all(|r| r.record.change.sequence_number.is_some()));
    // The MODIFY carries the image before the change: what the notice filter matches on.
    let old = Item::from_image(records[1].record.change.old_image.clone()).unwrap();
    assert_eq!(old.status, Status::Uploaded);
}

#[tokio::test]
async fn a_presigned_put_signs_the_length_and_the_type() {
    // moto does not check presigned signatures, so what S3 would enforce is read from the URL:
    // the length and the type are among the signed headers, and the client is told the type.
    let Some(eps) = endpoints() else {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    };
    let world = AwsWorld::create(eps).await;
    let store = S3Store::new(world.s3.clone(), world.bucket.clone());
    let upload = store
        .signed_upload(
            "incoming/x",
            12_345,
            "image/jpeg",
            std::time::Duration::from_secs(900),
        )
        .await
        .unwrap();
    let query = upload.url.split_once('?').unwrap().1;
    let signed = query
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-SignedHeaders="))
        .unwrap();
    let signed: Vec<&str> = signed.split("%3B").flat_map(|s| s.split(';')).collect();
    assert!(signed.contains(&"content-length"), "{signed:?}");
    assert!(signed.contains(&"content-type"), "{signed:?}");
    assert!(query.contains("X-Amz-Expires=900"), "{query}");
    assert_eq!(
        upload.headers.get("Content-Type").map(String::as_str),
        Some("image/jpeg")
    );
    // And moto stores what is PUT to it.
    let resp = reqwest_put(&upload.url, vec![7u8; 12_345]).await;
    assert_eq!(resp, 200);
    assert_eq!(store.head("incoming/x").await.unwrap().size, 12_345);
}

/// A plain HTTP PUT with the signed type, as a browser or curl would send it.
async fn reqwest_put(url: &str, body: Vec<u8>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("moto is plain HTTP");
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "PUT /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
