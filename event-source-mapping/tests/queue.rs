//! Lambda's SQS delivery semantics, as the queue mapping applies them: a scripted function over an
//! in-memory queue, checked against AWS's documented behaviour (partial batch responses).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use event_source_mapping::memory::MemoryQueue;
use event_source_mapping::queue::{
    QueueFunction, QueueMappingConfig, QueuePoller, QueueRuntime, Received,
};
use event_source_mapping::{FunctionError, NoObserver, Target};

type Answer = Result<SqsBatchResponse, FunctionError>;

/// Answers each batch as scripted (given the bodies it holds); records the bodies it was given.
struct Scripted {
    calls: Mutex<Vec<Vec<String>>>,
    answer: Box<dyn Fn(&SqsEvent) -> Answer + Send + Sync>,
}

#[async_trait]
impl QueueFunction for Scripted {
    async fn invoke(&self, event: SqsEvent) -> Answer {
        let bodies = event
            .records
            .iter()
            .map(|m| m.body.clone().unwrap())
            .collect();
        self.calls.lock().unwrap().push(bodies);
        (self.answer)(&event)
    }
}

/// Fails (reports) the messages whose body starts with `bad`.
fn keep_bad(event: &SqsEvent) -> Answer {
    let mut response = SqsBatchResponse::default();
    for m in &event.records {
        if m.body.as_deref().unwrap().starts_with("bad") {
            let mut f = BatchItemFailure::default();
            f.item_identifier = m.message_id.clone().unwrap();
            response.batch_item_failures.push(f);
        }
    }
    Ok(response)
}

fn rig(
    batch_size: usize,
    report: bool,
    answer: impl Fn(&SqsEvent) -> Answer + Send + Sync + 'static,
) -> (Arc<MemoryQueue>, Arc<Scripted>, QueuePoller) {
    let queue = Arc::new(MemoryQueue::default());
    let function = Arc::new(Scripted {
        calls: Mutex::new(Vec::new()),
        answer: Box::new(answer),
    });
    let poller = QueuePoller::new(
        Target::new("fn", function.clone()),
        Arc::new(QueueMappingConfig {
            name: "Fn.Queue".into(),
            queue: "Q".into(),
            batch_size,
            report_batch_item_failures: report,
        }),
        QueueRuntime {
            queue: queue.clone(),
            observer: Arc::new(NoObserver),
        },
    );
    (queue, function, poller)
}

#[tokio::test]
async fn reported_messages_stay_and_the_rest_are_deleted() {
    let (queue, function, poller) = rig(10, true, keep_bad);
    for body in ["a", "bad-1", "b", "bad-2"] {
        queue.send(body);
    }
    assert_eq!(poller.step().await.unwrap(), Received::Delivered);
    assert_eq!(queue.ids(), ["m-2", "m-4"]);
    // Hidden until their visibility timeout passes; then received again, with their count.
    assert_eq!(poller.step().await.unwrap(), Received::Nothing);
    queue.reappear();
    assert_eq!(poller.step().await.unwrap(), Received::Delivered);
    assert_eq!(
        function.calls.lock().unwrap().last().unwrap(),
        &["bad-1", "bad-2"]
    );
}

#[tokio::test]
async fn batches_are_at_most_batch_size() {
    let (queue, function, poller) = rig(2, true, keep_bad);
    for body in ["a", "b", "c"] {
        queue.send(body);
    }
    while poller.step().await.unwrap() == Received::Delivered {}
    assert_eq!(*function.calls.lock().unwrap(), [vec!["a", "b"], vec!["c"]]);
    assert!(queue.ids().is_empty());
}

#[tokio::test]
async fn a_function_error_keeps_the_whole_batch() {
    let (queue, _, poller) = rig(10, true, |_| Err(FunctionError::new("Boom", "boom")));
    queue.send("a");
    queue.send("b");
    poller.step().await.unwrap();
    assert_eq!(queue.ids(), ["m-1", "m-2"]);
}

#[tokio::test]
async fn an_identifier_that_names_no_message_fails_the_whole_batch() {
    let (queue, _, poller) = rig(10, true, |_| {
        let mut response = SqsBatchResponse::default();
        let mut f = BatchItemFailure::default();
        f.item_identifier = "no-such-message".into();
        response.batch_item_failures.push(f);
        Ok(response)
    });
    queue.send("a");
    poller.step().await.unwrap();
    assert_eq!(queue.ids(), ["m-1"]);
}

#[tokio::test]
async fn without_report_batch_item_failures_the_answer_is_ignored() {
    let (queue, _, poller) = rig(10, false, keep_bad);
    queue.send("bad");
    poller.step().await.unwrap();
    assert!(queue.ids().is_empty());
}
