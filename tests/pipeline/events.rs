//! The recorded events in events/: the template's filters select exactly the records each function
//! acts on, and the handlers take the events as Lambda delivers them.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{Context, LambdaEvent};
use local::TEMPLATE as EMBEDDED;
use sam_template::Template;
use serde_json::Value;
use state::memory::{MemoryStore, MemoryTable};
use state::{Item, ItemTable, Notice, Notifier, ObjectStore, StateError, Status};

use crate::helpers::fixture;

fn event(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn lambda_event(name: &str) -> LambdaEvent<Event> {
    LambdaEvent::new(
        serde_json::from_value(event(name)).unwrap(),
        Context::default(),
    )
}

#[test]
fn each_filter_matches_only_the_records_its_function_acts_on() {
    let template = Template::parse(EMBEDDED, &Default::default()).unwrap();
    let filters = |binary: &str| &template.mappings(binary)[0].filters;
    // (event file, process sees it, notice sees it)
    let cases = [
        ("stream-insert-uploaded.json", true, false),
        ("stream-modify-processed.json", false, true),
        ("stream-modify-notified.json", false, false), // notice's own write
        ("stream-modify-failed.json", false, false),   // process's own write, on a bad image
        ("stream-modify-stalled.json", false, false),  // the failure consumer's mark
        ("stream-modify-redrive-uploaded.json", true, false), // a redrive re-offers it to process
        ("stream-modify-redrive-processed.json", false, true), // ... and to notice
        ("stream-modify-arrived.json", true, false),   // a reservation's object arrived
        ("stream-remove-ttl.json", false, false),      // an unused reservation expired (TTL)
    ];
    for (file, process, notice) in cases {
        let records = event(file)["Records"].as_array().unwrap().clone();
        assert_eq!(records.len(), 1, "{file}");
        assert_eq!(
            filters("process").matches(&records[0]),
            process,
            "process / {file}"
        );
        assert_eq!(
            filters("notice").matches(&records[0]),
            notice,
            "notice / {file}"
        );
    }
}

#[test]
fn recorded_stream_events_round_trip_through_the_lambda_types() {
    for file in [
        "stream-insert-uploaded.json",
        "stream-modify-processed.json",
        "stream-unfiltered-batch.json",
    ] {
        let raw = event(file);
        let typed: Event = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(
            typed.records.len(),
            raw["Records"].as_array().unwrap().len()
        );
        for (t, r) in typed.records.iter().zip(raw["Records"].as_array().unwrap()) {
            assert_eq!(
                t.change.sequence_number.as_deref(),
                r["dynamodb"]["SequenceNumber"].as_str()
            );
            let item = Item::from_image(t.change.new_image.clone()).unwrap();
            assert_eq!(
                item.status.as_str(),
                r["dynamodb"]["NewImage"]["status"]["S"]
            );
        }
    }
}

async fn process_deps(
    event_file: &str,
) -> (process::Deps, Arc<MemoryTable>, Arc<MemoryStore>, Item) {
    let ev = lambda_event(event_file);
    let item = Item::from_image(ev.payload.records[0].change.new_image.clone()).unwrap();
    assert_eq!(item.status, Status::Uploaded);
    let table = Arc::new(MemoryTable::default());
    let store = Arc::new(MemoryStore::default());
    table.insert(&item).await.unwrap();
    store
        .put(
            &item.object_key,
            fixture("FreshFlower.jpg").into(),
            "image/jpeg",
        )
        .await
        .unwrap();
    let deps = process::Deps {
        table: table.clone(),
        store: store.clone(),
        settings: Arc::new(imaging::Settings::default()),
        concurrency: 2,
        memory: Arc::new(process::MemoryPool::new(&imaging::MemoryPlan::default())),
    };
    (deps, table, store, item)
}

#[tokio::test]
async fn process_acts_once_on_an_unfiltered_batch_and_ignores_the_rest() {
    // Every write of one item, as an unfiltered mapping would deliver them, twice over.
    let (deps, table, store, item) = process_deps("stream-insert-uploaded.json").await;
    for _ in 0..2 {
        let resp = process::handle(lambda_event("stream-unfiltered-batch.json"), &deps)
            .await
            .unwrap();
        assert!(resp.batch_item_failures.is_empty());
    }
    let after = table.get(item.id).await.unwrap().unwrap();
    assert_eq!(after.status, Status::Processed);
    assert_eq!(after.history.len(), 2);
    assert_eq!((after.width, after.height), (Some(1600), Some(1203)));
    for (name, key) in after.renditions.unwrap() {
        let (bytes, _) = store
            .object(&key)
            .unwrap_or_else(|| panic!("{name} stored"));
        assert!(!bytes.is_empty());
    }
}

/// A bucket that is down: every call fails as an outage does.
struct DownStore;

#[async_trait]
impl ObjectStore for DownStore {
    fn bucket(&self) -> &str {
        "down"
    }
    async fn put(&self, _: &str, _: bytes::Bytes, _: &str) -> Result<(), StateError> {
        Err(StateError::unavailable(anyhow::anyhow!(
            "connection refused"
        )))
    }
    async fn get(&self, _: &str) -> Result<bytes::Bytes, StateError> {
        Err(StateError::unavailable(anyhow::anyhow!(
            "connection refused"
        )))
    }
    async fn link(&self, key: &str) -> Result<String, StateError> {
        Ok(format!("down:///{key}"))
    }
    async fn head(&self, _: &str) -> Result<state::ObjectInfo, StateError> {
        Err(StateError::unavailable(anyhow::anyhow!(
            "connection refused"
        )))
    }
    async fn get_prefix(&self, _: &str, _: usize) -> Result<bytes::Bytes, StateError> {
        Err(StateError::unavailable(anyhow::anyhow!(
            "connection refused"
        )))
    }
    async fn signed_upload(
        &self,
        _: &str,
        _: u64,
        _: &str,
        _: std::time::Duration,
    ) -> Result<state::SignedUpload, StateError> {
        Err(StateError::unavailable(anyhow::anyhow!(
            "connection refused"
        )))
    }
}

#[tokio::test]
async fn process_reports_a_store_outage_as_a_batch_item_failure() {
    let (mut deps, table, _, item) = process_deps("stream-insert-uploaded.json").await;
    deps.store = Arc::new(DownStore);
    let resp = process::handle(lambda_event("stream-insert-uploaded.json"), &deps)
        .await
        .unwrap();
    let failed: Vec<_> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    let seq = event("stream-insert-uploaded.json")["Records"][0]["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(failed, vec![seq]);
    assert_eq!(
        table.get(item.id).await.unwrap().unwrap().status,
        Status::Uploaded,
        "untouched, to be retried"
    );
}

#[derive(Default)]
struct CountingNotifier {
    sent: Mutex<Vec<Notice>>,
}

#[async_trait]
impl Notifier for CountingNotifier {
    async fn publish(&self, notice: &Notice) -> Result<String, StateError> {
        let mut sent = self.sent.lock().unwrap();
        sent.push(notice.clone());
        Ok(format!("msg-{}", sent.len()))
    }
}

#[tokio::test]
async fn notice_mails_once_however_often_the_processed_record_comes() {
    let ev = lambda_event("stream-modify-processed.json");
    let item = Item::from_image(ev.payload.records[0].change.new_image.clone()).unwrap();
    let table = Arc::new(MemoryTable::default());
    // Bring a table item to `processed` the only way there is.
    let mut uploaded = item.clone();
    uploaded.status = Status::Uploaded;
    table.insert(&uploaded).await.unwrap();
    let facts = state::ProcessedFacts {
        width: item.width.unwrap(),
        height: item.height.unwrap(),
        format: item.format.clone().unwrap(),
        renditions: item.renditions.clone().unwrap(),
        exif: Default::default(),
        placeholder: None,
        frames: None,
        duration_ms: None,
        warnings: Vec::new(),
    };
    state::transition::processed(table.as_ref(), item.id, facts)
        .await
        .unwrap();

    let notifier = Arc::new(CountingNotifier::default());
    let deps = notice::Deps {
        table: table.clone(),
        notifier: notifier.clone(),
        store: Arc::new(state::memory::MemoryStore::default()),
        concurrency: 2,
    };
    for file in [
        "stream-modify-processed.json",
        "stream-unfiltered-batch.json",
        "stream-modify-processed.json",
    ] {
        let resp = notice::handle(lambda_event(file), &deps).await.unwrap();
        assert!(resp.batch_item_failures.is_empty(), "{file}");
    }
    let sent = notifier.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].body.contains(&item.id.to_string()));
    assert!(sent[0].body.contains(&format!("{} bytes", item.size)));
    assert!(
        sent[0].body.contains("thumbnail: s3://images/processed/"),
        "{}",
        sent[0].body
    );
    let after = table.get(item.id).await.unwrap().unwrap();
    assert_eq!(after.status, Status::Notified);
    assert_eq!(after.message_id.as_deref(), Some("msg-1"));
}

#[tokio::test]
async fn malformed_records_are_skipped_and_not_retried() {
    // A record whose NewImage is not an item, and one with no NewImage at all.
    let mut raw = event("stream-insert-uploaded.json");
    raw["Records"][0]["dynamodb"]["NewImage"] =
        serde_json::json!({ "id": { "S": "x" }, "status": { "N": "7" } });
    let mut second = raw["Records"][0].clone();
    second["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("NewImage");
    second["dynamodb"]["SequenceNumber"] = serde_json::json!("1000000000000000000999");
    raw["Records"].as_array_mut().unwrap().push(second);
    let ev = LambdaEvent::new(
        serde_json::from_value::<Event>(raw).unwrap(),
        Context::default(),
    );
    let (deps, table, _, item) = process_deps("stream-insert-uploaded.json").await;
    let resp = process::handle(ev.clone(), &deps).await.unwrap();
    assert!(
        resp.batch_item_failures.is_empty(),
        "a record that can never parse is not retried"
    );
    assert_eq!(
        table.get(item.id).await.unwrap().unwrap().status,
        Status::Uploaded,
        "nothing was done"
    );
    let notifier = Arc::new(CountingNotifier::default());
    let notice_deps = notice::Deps {
        table,
        notifier: notifier.clone(),
        store: Arc::new(state::memory::MemoryStore::default()),
        concurrency: 2,
    };
    assert!(notice::handle(ev, &notice_deps)
        .await
        .unwrap()
        .batch_item_failures
        .is_empty());
    assert!(notifier.sent.lock().unwrap().is_empty());
}

#[test]
fn the_bucket_notifies_ingest_of_reservations_and_image_drop_ins_only() {
    let template = Template::parse(EMBEDDED, &Default::default()).unwrap();
    let rules = &template.notification_rules("ingest");
    assert!(!rules.is_empty());
    // (event file, ingest is invoked)
    for (file, invoked) in [
        ("s3-put-incoming.json", true),         // a reservation's object
        ("s3-put-ingest-jpg.json", true),       // a drop-in (key URL-encoded: red+flower.jpg)
        ("s3-put-ingest-jpg-upper.json", true), // a camera's upper-case suffix
        ("s3-put-ingest-txt.json", false),      // not an image's suffix
        ("s3-put-uploads.json", false),         // the upload function's own write
        ("s3-put-processed.json", false),       // the process function's own writes
    ] {
        let event: aws_lambda_events::s3::S3Event = serde_json::from_value(event(file)).unwrap();
        let record = &event.records[0];
        let name = format!("s3:{}", record.event_name.as_deref().unwrap());
        let key = record.s3.object.key.as_deref().unwrap();
        let matched = rules.iter().any(|r| r.matches(&name, key));
        assert_eq!(matched, invoked, "{file}");
    }
}

#[test]
fn every_extension_of_every_format_taken_is_a_drop_in_rule_in_both_cases() {
    let template = Template::parse(EMBEDDED, &Default::default()).unwrap();
    let rules = &template.notification_rules("ingest");
    for kind in state::media::MediaType::ALL {
        for ext in kind.extensions() {
            for ext in [ext.to_string(), ext.to_ascii_uppercase()] {
                let key = format!("ingest/IMG_0001.{ext}");
                assert!(
                    rules
                        .iter()
                        .any(|r| r.matches("s3:ObjectCreated:Put", &key)),
                    "no drop-in rule takes {key} ({kind})"
                );
            }
        }
    }
    // Nor more than those: a mixed-case or unknown suffix is not an image's.
    for key in ["ingest/a.Jpg", "ingest/a.bmp", "ingest/a.txt"] {
        assert!(
            !rules.iter().any(|r| r.matches("s3:ObjectCreated:Put", key)),
            "{key}"
        );
    }
}
