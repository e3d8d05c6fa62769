//! The Lambda bootstrap's metrics: the EMF recorder it installs (`pipeline_metrics::lambda`), fed
//! by a run of the handler, writes CloudWatch Embedded Metric Format documents whose names, units
//! and dimensions are the pipeline's list. The recorder is the process's, so this file holds one test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use config_vars::Vars;
use lambda_runtime::{Context, LambdaEvent};
use pipeline_metrics::{self as pm, FailureReason, Kind};
use process::{handle, Config, Deps};
use serde_json::Value;
use state::memory::{MemoryStore, MemoryTable};
use state::{
    Distribution, GivenUpRecords, ItemTable, Notifier, ObjectStore, ResourceError, Resources,
    Secrets,
};

struct Host {
    table: Arc<MemoryTable>,
    store: Arc<MemoryStore>,
}

impl Resources for Host {
    fn table(&self, _: &str) -> Result<Arc<dyn ItemTable>, ResourceError> {
        Ok(self.table.clone())
    }
    fn bucket(&self, _: &str, _: Duration) -> Result<Arc<dyn ObjectStore>, ResourceError> {
        Ok(self.store.clone())
    }
    fn bucket_behind(
        &self,
        name: &str,
        links: Duration,
        _: Distribution,
    ) -> Result<Arc<dyn ObjectStore>, ResourceError> {
        self.bucket(name, links)
    }
    fn topic(&self, arn: &str) -> Result<Arc<dyn Notifier>, ResourceError> {
        Err(missing("topic", arn))
    }
    fn given_up_records(&self) -> Result<Arc<dyn GivenUpRecords>, ResourceError> {
        Err(missing("stream", ""))
    }
    fn secrets(&self) -> Result<Arc<dyn Secrets>, ResourceError> {
        Err(missing("secrets", ""))
    }
}

fn missing(kind: &'static str, name: &str) -> ResourceError {
    ResourceError::Missing {
        kind,
        name: name.into(),
        have: "none".into(),
    }
}

fn file(path: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path),
    )
    .unwrap()
}

/// The recorded INSERT of an upload, for the item `id` whose original is at `key`.
fn upload_event(id: &str, key: &str) -> Event {
    let text = String::from_utf8(file("events/stream-insert-uploaded.json")).unwrap();
    let text = text
        .replace("uploads/fb26b789-54d5-436f-91c4-a8183cd39cc2.jpg", key)
        .replace("fb26b789-54d5-436f-91c4-a8183cd39cc2", id);
    serde_json::from_str(&text).unwrap()
}

/// One metric of an EMF document: its unit, its dimension names and its value.
type Emitted = (String, Vec<String>, Value);

/// The metrics of one EMF document by name, and the document.
fn parse(line: &str, namespace: &str) -> (BTreeMap<String, Emitted>, Value) {
    let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(directives.len(), 1, "{line}");
    let directive = &directives[0];
    assert_eq!(directive["Namespace"], namespace, "{line}");
    assert!(doc["_aws"]["Timestamp"].as_u64().unwrap() > 0, "{line}");
    let dimension_sets = directive["Dimensions"].as_array().unwrap();
    assert_eq!(dimension_sets.len(), 1, "{line}");
    let dimensions: Vec<String> = dimension_sets[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    for d in &dimensions {
        assert!(doc[d].is_string(), "dimension {d} has no value: {line}");
    }
    let mut metrics = BTreeMap::new();
    for m in directive["Metrics"].as_array().unwrap() {
        let name = m["Name"].as_str().unwrap().to_owned();
        let unit = m["Unit"].as_str().unwrap_or("None").to_owned();
        // EMF: each metric's value is a member of the document, as are the dimensions' values.
        let value = doc[&name].clone();
        metrics.insert(name, (unit, dimensions.clone(), value));
    }
    (metrics, doc)
}

#[tokio::test]
async fn a_run_of_the_handler_is_flushed_as_emf_with_the_pipelines_names_units_and_dimensions() {
    let namespace = "image-pipeline-test";
    let vars = BTreeMap::from([("METRICS_NAMESPACE".to_owned(), namespace.to_owned())]);
    let collector = pm::lambda::install(&Vars::map(&vars)).unwrap();

    let host = Host {
        table: Arc::new(MemoryTable::default()),
        store: Arc::new(MemoryStore::default()),
    };
    let config = Config::from_vars(&Vars::map(&BTreeMap::from([
        ("TABLE_NAME".to_owned(), "t".to_owned()),
        ("BUCKET_NAME".to_owned(), "b".to_owned()),
    ])))
    .unwrap();
    let deps = Deps::new(config, &host).unwrap();
    let good = ("fb26b789-54d5-436f-91c4-a8183cd39cc2", "uploads/good.jpg");
    let bad = ("0b6f5a8e-4d2c-4f3a-9e1b-2c3d4e5f6a7b", "uploads/bad.jpg");
    host.store
        .put(good.1, file("sample.jpg").into(), "image/jpeg")
        .await
        .unwrap();
    host.store
        .put(
            bad.1,
            bytes::Bytes::from_static(b"not an image at all"),
            "image/jpeg",
        )
        .await
        .unwrap();
    for (id, key) in [good, bad] {
        let event = upload_event(id, key);
        let item = state::stream::item_of(&event.records[0]).unwrap();
        host.table.insert(&item).await.unwrap();
        let answer = handle(LambdaEvent::new(event, Context::default()), &deps)
            .await
            .unwrap();
        assert!(answer.batch_item_failures.is_empty());
    }
    let processed = host.table.get(good.0.parse().unwrap()).await.unwrap();
    let renditions = processed.unwrap().renditions.unwrap().len();

    // What the runtime layer writes to stdout after an invocation, written here to a buffer.
    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let mut seen = BTreeMap::new();
    let mut failed_reason = None;
    for line in out.lines() {
        let (metrics, doc) = parse(line, namespace);
        assert_eq!(doc["function"], "process", "{line}");
        if metrics.contains_key(pm::IMAGES_FAILED) {
            failed_reason = Some(doc["reason"].clone());
        }
        seen.extend(metrics);
    }
    assert_eq!(
        failed_reason,
        Some(Value::from(FailureReason::NotAnImage.as_str()))
    );

    // Every metric process records, with the list's unit and dimensions.
    let recorded_by_process = [
        pm::IMAGES_PROCESSED,
        pm::IMAGES_FAILED,
        pm::PROCESSING_MS,
        pm::MS_PER_MEGAPIXEL,
        pm::INPUT_BYTES,
        pm::OUTPUT_BYTES,
        pm::RENDITIONS,
        pm::COLD_STARTS,
    ];
    for name in recorded_by_process {
        let spec = pm::ALL.iter().find(|m| m.name == name).unwrap();
        let (unit, dimensions, value) = seen
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the EMF output:\n{out}"));
        assert_eq!(unit, spec.cloudwatch_unit(), "{name}");
        assert_eq!(dimensions, &spec.dimensions.to_vec(), "{name}");
        match spec.kind {
            // One image each: a histogram flushes its observations as a list.
            Kind::Histogram => {
                let values = value
                    .as_array()
                    .unwrap_or_else(|| panic!("{name}: {value}"));
                assert_eq!(values.len(), 1, "{name}: {value}");
                assert!(values[0].as_f64().unwrap() > 0.0, "{name}: {value}");
            }
            Kind::Counter => assert!(value.as_u64().unwrap() >= 1, "{name}: {value}"),
        }
    }
    assert_eq!(seen[pm::IMAGES_PROCESSED].2, 1);
    assert_eq!(seen[pm::IMAGES_FAILED].2, 1);
    assert_eq!(seen[pm::COLD_STARTS].2, 1);
    assert_eq!(seen[pm::RENDITIONS].2, renditions as u64);
    assert_eq!(seen[pm::INPUT_BYTES].2, file("sample.jpg").len() as u64);
    assert!(
        !seen.contains_key(pm::NOTICES_PUBLISHED),
        "process publishes no notice"
    );

    // Counters are deltas: a second flush with nothing new writes nothing.
    let mut again = Vec::new();
    collector.flush(&mut again).unwrap();
    assert!(again.is_empty(), "{}", String::from_utf8_lossy(&again));
}
