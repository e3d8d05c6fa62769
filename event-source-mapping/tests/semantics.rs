//! Lambda's stream delivery semantics, as the dispatcher applies them: a scripted function over
//! synthetic stream records, checked against AWS's documented behaviour. The same dispatcher runs
//! on the engine's SQLite stream and on DynamoDB Streams (tests/pipeline).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use event_source_mapping::memory::{MemoryCheckpoints, MemorySource};
use event_source_mapping::{
    Backoff, Checkpoints, Cursor, Dispatcher, FunctionError, InFlight, MappingConfig,
    MappingRuntime, NoObserver, Step, StreamFunction, Target,
};
use lambda_filter::FilterCriteria;
use serde_json::json;

type Answer = Result<DynamoDbEventResponse, FunctionError>;

/// The scripted answer to a batch: its sequence numbers and the call's number (1 = first).
type Script = Box<dyn Fn(&[u64], usize) -> Answer + Send + Sync>;

/// A function whose answer to each batch is scripted; it records the sequence numbers it was given.
struct Scripted {
    calls: Mutex<Vec<Vec<u64>>>,
    answer: Script,
    /// A batch holding this record never returns: the process "dies" in the call.
    hang_on: Option<u64>,
}

#[async_trait]
impl StreamFunction for Scripted {
    async fn invoke(&self, event: Event) -> Answer {
        let seqs: Vec<u64> = event
            .records
            .iter()
            .map(|r| {
                r.change
                    .sequence_number
                    .as_deref()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        let call = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(seqs.clone());
            calls.len()
        };
        if self.hang_on.is_some_and(|h| seqs.contains(&h)) {
            std::future::pending::<()>().await;
        }
        (self.answer)(&seqs, call)
    }
}

fn failures(seqs: &[u64]) -> Answer {
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = seqs
        .iter()
        .map(|s| {
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = Some(format!("{s:021}"));
            f
        })
        .collect();
    Ok(response)
}

fn ok() -> Answer {
    Ok(DynamoDbEventResponse::default())
}

fn boom() -> Answer {
    Err(FunctionError::new("Boom", "boom"))
}

fn mapping(batch_size: usize) -> MappingConfig {
    MappingConfig {
        batch_size,
        maximum_retry_attempts: Some(2),
        report_batch_item_failures: true,
        on_failure: Some("FailureQueue".into()),
        ..MappingConfig::new("Fn.Stream")
    }
}

/// A stream record of item `item-{i}` at sequence number `i`.
fn record(i: u64) -> serde_json::Value {
    json!({
        "eventID": i.to_string(), "eventName": "MODIFY", "awsRegion": "local",
        "dynamodb": {
            "Keys": { "id": { "S": format!("item-{i}") } },
            "SequenceNumber": format!("{i:021}"), "SizeBytes": 1
        }
    })
}

struct Rig {
    source: Arc<MemorySource>,
    checkpoints: Arc<MemoryCheckpoints>,
    function: Arc<Scripted>,
    dispatcher: Dispatcher,
}

fn dispatcher(
    mapping: MappingConfig,
    source: &Arc<MemorySource>,
    checkpoints: &Arc<MemoryCheckpoints>,
    function: &Arc<Scripted>,
) -> Dispatcher {
    Dispatcher::new(
        Target::new("fn", function.clone()),
        Arc::new(mapping),
        MappingRuntime {
            source: source.clone(),
            checkpoints: checkpoints.clone(),
            observer: Arc::new(NoObserver),
            backoff: Backoff {
                first: Duration::from_millis(1),
                max: Duration::from_secs(5),
            },
        },
    )
}

/// `n` records, one per item, the first `old` of them older than a day.
async fn rig(
    n: u64,
    old: u64,
    mapping: MappingConfig,
    answer: impl Fn(&[u64], usize) -> Answer + Send + Sync + 'static,
) -> Rig {
    let source = Arc::new(MemorySource::default());
    let now = now_ms();
    for i in 1..=n {
        let created = if i <= old { now - 86_400_000 } else { now };
        assert_eq!(source.append(created, record(i)), i);
    }
    let checkpoints = Arc::new(MemoryCheckpoints::default());
    let function = Arc::new(Scripted {
        calls: Mutex::new(Vec::new()),
        answer: Box::new(answer),
        hang_on: None,
    });
    let dispatcher = dispatcher(mapping, &source, &checkpoints, &function);
    Rig {
        source,
        checkpoints,
        function,
        dispatcher,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
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

    fn dead(&self) -> Vec<u64> {
        self.checkpoints
            .dead_letters()
            .iter()
            .map(|(_, d)| d.record.position)
            .collect()
    }

    async fn position(&self) -> u64 {
        self.checkpoints.cursor("Fn.Stream").await.unwrap().position
    }
}

#[tokio::test]
async fn batches_hold_at_most_batch_size_records_in_order() {
    let mut rig = rig(25, 0, mapping(10), |_, _| ok()).await;
    rig.run().await;
    let calls = rig.calls();
    assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(calls.concat(), (1..=25).collect::<Vec<_>>());
    assert_eq!(rig.position().await, 25);
}

#[tokio::test]
async fn reported_failures_resume_the_batch_from_the_lowest_one() {
    // First call fails 7 and 4: Lambda checkpoints before 4 and delivers 4.. again.
    let mut rig = rig(10, 0, mapping(10), |_, call| {
        if call == 1 {
            failures(&[7, 4])
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
    assert!(rig.dead().is_empty());
}

#[tokio::test]
async fn an_identifier_naming_no_record_fails_the_whole_batch() {
    let mut rig = rig(3, 0, mapping(10), |_, call| {
        if call == 1 {
            let mut response = DynamoDbEventResponse::default();
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = Some("not-a-sequence-number".into());
            response.batch_item_failures = vec![f];
            Ok(response)
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
    let mut rig = rig(3, 0, m, |_, _| failures(&[2])).await;
    rig.run().await;
    assert_eq!(rig.calls(), vec![vec![1, 2, 3]]);
}

#[tokio::test]
async fn retries_stop_after_maximum_retry_attempts_and_the_record_is_dead_lettered() {
    // Record 2 always fails: 1 try + MaximumRetryAttempts (2) retries, then the destination.
    let mut rig = rig(4, 0, mapping(1), |seqs, _| {
        if seqs == [2] {
            failures(&[2])
        } else {
            ok()
        }
    })
    .await;
    rig.run().await;
    let calls = rig.calls();
    assert_eq!(calls.iter().filter(|c| c.as_slice() == [2]).count(), 3);
    assert_eq!(rig.dead(), [2]);
    assert_eq!(
        calls.last().unwrap(),
        &vec![4],
        "the records after it were delivered"
    );
    let letter = &rig.checkpoints.dead_letters()[0].1;
    assert_eq!(
        letter.record.record["dynamodb"]["Keys"]["id"]["S"], "item-2",
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
    let mut rig = rig(
        16,
        0,
        m,
        |seqs, _| {
            if seqs.contains(&6) {
                boom()
            } else {
                ok()
            }
        },
    )
    .await;
    rig.run().await;
    assert_eq!(rig.dead(), [6]);
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
    assert_eq!(rig.dead(), [1, 2]);
    assert_eq!(rig.calls(), vec![vec![3, 4, 5]]);
}

#[tokio::test]
async fn a_restarted_dispatcher_resumes_from_its_checkpoint() {
    let mut rig = rig(
        6,
        0,
        mapping(3),
        |_, call| {
            if call == 2 {
                boom()
            } else {
                ok()
            }
        },
    )
    .await;
    // One batch done, the second fails: the checkpoint stays after the first.
    assert_eq!(rig.dispatcher.step().await.unwrap(), Step::Progressed);
    assert!(matches!(
        rig.dispatcher.step().await.unwrap(),
        Step::Retrying(_)
    ));
    assert_eq!(rig.position().await, 3);
    // A new dispatcher over the same store (a restart) delivers 4.. again: at-least-once.
    let mut again = dispatcher(mapping(3), &rig.source, &rig.checkpoints, &rig.function);
    while again.step().await.unwrap() != Step::Idle {}
    assert_eq!(
        rig.calls(),
        vec![vec![1, 2, 3], vec![4, 5, 6], vec![4, 5, 6]]
    );
}

#[tokio::test]
async fn an_attempt_in_flight_when_the_process_died_counts_as_a_failure() {
    // The stored cursor says a batch starting at 2 was being invoked (after 2 failed attempts)
    // when the last process stopped: the restart counts that as the 3rd failure, which is over
    // MaximumRetryAttempts (2), so the record goes to the destination without a 4th invocation.
    let mut rig = rig(3, 0, mapping(1), |_, _| ok()).await;
    rig.checkpoints
        .save(
            "Fn.Stream",
            Cursor {
                position: 1,
                in_flight: Some(InFlight {
                    first: 2,
                    attempts: 2,
                    limit: 1,
                }),
            },
        )
        .await
        .unwrap();
    rig.run().await;
    assert_eq!(rig.dead(), [2]);
    assert_eq!(rig.calls(), vec![vec![3]]);
    let letter = &rig.checkpoints.dead_letters()[0].1;
    assert!(
        letter.reason.contains("process stopped"),
        "{}",
        letter.reason
    );
}

#[tokio::test]
async fn a_record_that_takes_the_process_down_is_bisected_out_across_restarts() {
    // Each "process" runs until it invokes a batch holding record 5, which never returns (the
    // process is gone; the test drops it). The next dispatcher finds that attempt in flight.
    // However often it restarts, it ends with 5 dead-lettered and every other record delivered,
    // instead of crashing on 5 forever.
    let source = Arc::new(MemorySource::default());
    for i in 1..=8 {
        source.append(now_ms(), record(i));
    }
    let checkpoints = Arc::new(MemoryCheckpoints::default());
    let mut m = mapping(4);
    m.bisect_on_error = true;
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let mut restarts = 0;
    loop {
        let function = Arc::new(Scripted {
            calls: Mutex::new(Vec::new()),
            answer: Box::new({
                let delivered = delivered.clone();
                move |seqs, _| {
                    delivered.lock().unwrap().extend_from_slice(seqs);
                    ok()
                }
            }),
            hang_on: Some(5),
        });
        let mut d = dispatcher(m.clone(), &source, &checkpoints, &function);
        let mut idle = false;
        for _ in 0..100 {
            match tokio::time::timeout(Duration::from_millis(200), d.step()).await {
                Err(_) => break, // the process died in the call
                Ok(step) => {
                    if step.unwrap() == Step::Idle {
                        idle = true;
                        break;
                    }
                }
            }
        }
        drop(d);
        if idle {
            break;
        }
        restarts += 1;
        assert!(restarts < 20, "still crashing after {restarts} restarts");
    }
    let dead: Vec<u64> = checkpoints
        .dead_letters()
        .iter()
        .map(|(_, l)| l.record.position)
        .collect();
    assert_eq!(dead, [5]);
    let mut delivered = delivered.lock().unwrap().clone();
    delivered.sort_unstable();
    let n = delivered.len();
    delivered.dedup();
    assert_eq!(
        n,
        delivered.len(),
        "no record delivered twice after it succeeded"
    );
    assert_eq!(delivered, [1, 2, 3, 4, 6, 7, 8]);
}

#[tokio::test]
async fn a_record_that_is_not_a_stream_record_is_a_function_error() {
    let source = Arc::new(MemorySource::default());
    source.append(now_ms(), json!({ "not": "a stream record" }));
    source.append(now_ms(), record(2));
    let checkpoints = Arc::new(MemoryCheckpoints::default());
    let function = Arc::new(Scripted {
        calls: Mutex::new(Vec::new()),
        answer: Box::new(|_, _| ok()),
        hang_on: None,
    });
    let mut m = mapping(10);
    m.bisect_on_error = true;
    let mut d = dispatcher(m, &source, &checkpoints, &function);
    while d.step().await.unwrap() != Step::Idle {}
    let dead: Vec<u64> = checkpoints
        .dead_letters()
        .iter()
        .map(|(_, l)| l.record.position)
        .collect();
    assert_eq!(dead, [1]);
    assert_eq!(function.calls.lock().unwrap().clone(), vec![vec![2]]);
}

#[tokio::test]
async fn filters_drop_records_before_batching() {
    let mut m = mapping(10);
    m.filters =
        FilterCriteria::parse(&[r#"{"dynamodb": {"Keys": {"id": {"S": [{"suffix": "-3"}]}}}}"#])
            .unwrap();
    let mut rig = rig(5, 0, m, |_, _| ok()).await;
    rig.run().await;
    assert_eq!(rig.calls(), vec![vec![3]]);
    assert_eq!(
        rig.position().await,
        5,
        "the checkpoint passes what was dropped"
    );
}
