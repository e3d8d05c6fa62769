//! Lambda's stream delivery semantics, as the engine's dispatcher applies them: a scripted function
//! over synthetic stream records, checked against AWS's documented behaviour.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use local::db::{Database, MirroredRecord};
use local::dispatcher::{Dispatcher, Step, StreamFunction};
use local::faults::Faults;
use local::filter::FilterCriteria;
use local::metrics::Metrics;
use local::template::StreamMapping;
use serde_json::{json, Value};

/// The scripted answer to a batch: its sequence numbers and the call's number (1 = first).
type Answer = Box<dyn Fn(&[u64], usize) -> Result<Value, String> + Send + Sync>;

/// A function whose answer to each batch is scripted; it records the sequence numbers it was given.
struct Scripted {
    calls: Mutex<Vec<Vec<u64>>>,
    answer: Answer,
}

fn seq_of(record: &Value) -> u64 {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[async_trait]
impl StreamFunction for Scripted {
    async fn invoke(&self, event: Value) -> Result<Value, String> {
        let seqs: Vec<u64> = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(seq_of)
            .collect();
        let call = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(seqs.clone());
            calls.len()
        };
        (self.answer)(&seqs, call)
    }
}

fn failures(seqs: &[u64]) -> Value {
    json!({ "batchItemFailures": seqs.iter().map(|s| json!({ "itemIdentifier": format!("{s:021}") })).collect::<Vec<_>>() })
}

fn ok() -> Result<Value, String> {
    Ok(json!({ "batchItemFailures": [] }))
}

fn mapping(batch_size: usize) -> StreamMapping {
    StreamMapping {
        name: "Fn.Stream".into(),
        batch_size,
        filters: FilterCriteria::parse::<&str>(&[]).unwrap(),
        maximum_retry_attempts: Some(2),
        maximum_record_age: None,
        bisect_on_error: false,
        report_batch_item_failures: true,
        on_failure: Some("FailureQueue".into()),
        starting_position: "TRIM_HORIZON".into(),
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    db: Database,
    function: Arc<Scripted>,
    dispatcher: Dispatcher,
}

/// `n` records, one per item, the first `old` of them older than a day.
async fn rig(
    n: u64,
    old: u64,
    mapping: StreamMapping,
    answer: impl Fn(&[u64], usize) -> Result<Value, String> + Send + Sync + 'static,
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("t.db")).unwrap();
    let now = state::now_ms();
    let records = (1..=n)
        .map(|i| MirroredRecord {
            item_id: format!("item-{i}"),
            created_ms: if i <= old { now - 86_400_000 } else { now },
            record: json!({ "eventName": "MODIFY", "dynamodb": { "Keys": { "id": { "S": format!("item-{i}") } } } }),
        })
        .collect();
    db.mirror("shard".into(), records, None, false)
        .await
        .unwrap();
    let function = Arc::new(Scripted {
        calls: Mutex::new(Vec::new()),
        answer: Box::new(answer),
    });
    let dispatcher = Dispatcher::new(
        "fn",
        Arc::new(mapping),
        db.clone(),
        function.clone(),
        Metrics::new(),
        Duration::from_millis(1),
        Faults::default(),
    );
    Rig {
        _dir: dir,
        db,
        function,
        dispatcher,
    }
}

impl Rig {
    async fn run(&mut self) {
        for _ in 0..1000 {
            match self.dispatcher.step().await.unwrap() {
                Step::Idle => return,
                Step::Progressed | Step::Retrying(_) => {}
            }
        }
        panic!("the dispatcher never went idle");
    }

    fn calls(&self) -> Vec<Vec<u64>> {
        self.function.calls.lock().unwrap().clone()
    }

    async fn dead(&self) -> Vec<u64> {
        self.db
            .dead_letters()
            .await
            .unwrap()
            .iter()
            .map(|d| d.seq)
            .collect()
    }
}

#[tokio::test]
async fn batches_hold_at_most_batch_size_records_in_order() {
    let mut rig = rig(25, 0, mapping(10), |_, _| ok()).await;
    rig.run().await;
    let calls = rig.calls();
    assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(calls.concat(), (1..=25).collect::<Vec<_>>());
    assert_eq!(rig.db.checkpoint("Fn.Stream").await.unwrap(), 25);
}

#[tokio::test]
async fn reported_failures_resume_the_batch_from_the_lowest_one() {
    // First call fails 7 and 4: Lambda checkpoints before 4 and delivers 4.. again.
    let mut rig = rig(10, 0, mapping(10), |_, call| {
        if call == 1 {
            Ok(failures(&[7, 4]))
        } else {
            ok()
        }
    })
    .await;
    rig.run().await;
    assert_eq!(
        rig.calls(),
        vec![(1..=10).collect::<Vec<_>>(), (4..=10).collect()]
    );
    assert!(rig.dead().await.is_empty());
}

#[tokio::test]
async fn an_identifier_naming_no_record_fails_the_whole_batch() {
    let mut rig = rig(3, 0, mapping(10), |_, call| {
        if call == 1 {
            Ok(json!({ "batchItemFailures": [{ "itemIdentifier": "not-a-sequence-number" }] }))
        } else {
            ok()
        }
    })
    .await;
    rig.run().await;
    assert_eq!(rig.calls(), vec![vec![1, 2, 3], vec![1, 2, 3]]);
}

#[tokio::test]
async fn without_report_batch_item_failures_the_answer_is_ignored() {
    let mut m = mapping(10);
    m.report_batch_item_failures = false;
    let mut rig = rig(3, 0, m, |_, _| Ok(failures(&[2]))).await;
    rig.run().await;
    assert_eq!(rig.calls(), vec![vec![1, 2, 3]]);
}

#[tokio::test]
async fn retries_stop_after_maximum_retry_attempts_and_the_record_is_dead_lettered() {
    // Record 2 always fails: 1 try + MaximumRetryAttempts (2) retries, then the destination.
    let mut rig = rig(4, 0, mapping(1), |seqs, _| {
        if seqs == [2] {
            Ok(failures(&[2]))
        } else {
            ok()
        }
    })
    .await;
    rig.run().await;
    let calls = rig.calls();
    assert_eq!(calls.iter().filter(|c| c.as_slice() == [2]).count(), 3);
    assert_eq!(rig.dead().await, [2]);
    assert_eq!(
        calls.last().unwrap(),
        &vec![4],
        "the records after it were delivered"
    );
    let letter = &rig.db.dead_letters().await.unwrap()[0];
    assert_eq!(
        letter.record["dynamodb"]["Keys"]["id"]["S"], "item-2",
        "enough to find the item"
    );
    assert!(
        letter.reason.contains("retries exhausted"),
        "{}",
        letter.reason
    );
}

#[tokio::test]
async fn bisecting_isolates_a_poison_record_and_delivers_every_other_once() {
    let mut m = mapping(8);
    m.bisect_on_error = true;
    // A function error (not a partial answer) whenever the batch holds record 6.
    let mut rig = rig(16, 0, m, |seqs, _| {
        if seqs.contains(&6) {
            Err("boom".into())
        } else {
            ok()
        }
    })
    .await;
    rig.run().await;
    assert_eq!(rig.dead().await, [6]);
    let delivered_ok: Vec<u64> = rig
        .calls()
        .into_iter()
        .filter(|c| !c.contains(&6))
        .flatten()
        .collect();
    let mut sorted = delivered_ok.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        delivered_ok.len(),
        "no record succeeded twice"
    );
    assert_eq!(sorted, (1..=16).filter(|&s| s != 6).collect::<Vec<_>>());
    assert!(
        rig.calls().iter().any(|c| c.as_slice() == [6]),
        "halved down to the poison record alone"
    );
}

#[tokio::test]
async fn records_older_than_maximum_record_age_go_to_the_destination_unprocessed() {
    let mut m = mapping(10);
    m.maximum_record_age = Some(Duration::from_secs(3600));
    let mut rig = rig(5, 2, m, |_, _| ok()).await;
    rig.run().await;
    assert_eq!(rig.dead().await, [1, 2]);
    assert_eq!(rig.calls(), vec![vec![3, 4, 5]]);
}

#[tokio::test]
async fn a_restarted_dispatcher_resumes_from_its_checkpoint() {
    let mut rig = rig(6, 0, mapping(3), |_, call| {
        if call == 2 {
            Err("crash".into())
        } else {
            ok()
        }
    })
    .await;
    // One batch done, the second fails: the checkpoint stays after the first.
    assert_eq!(rig.dispatcher.step().await.unwrap(), Step::Progressed);
    assert!(matches!(
        rig.dispatcher.step().await.unwrap(),
        Step::Retrying(_)
    ));
    assert_eq!(rig.db.checkpoint("Fn.Stream").await.unwrap(), 3);
    // A new dispatcher over the same database (a restart) delivers 4.. again: at-least-once.
    let mut again = Dispatcher::new(
        "fn",
        Arc::new(mapping(3)),
        rig.db.clone(),
        rig.function.clone(),
        Metrics::new(),
        Duration::from_millis(1),
        Faults::default(),
    );
    while again.step().await.unwrap() != Step::Idle {}
    assert_eq!(
        rig.calls(),
        vec![vec![1, 2, 3], vec![4, 5, 6], vec![4, 5, 6]]
    );
}
