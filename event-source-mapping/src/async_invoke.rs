//! Lambda's asynchronous invocation, as S3 uses it for bucket notifications: each event is
//! queued, invoked on its own, retried after a function error with growing pauses up to
//! `MaximumRetryAttempts` (default 2), never older than `MaximumEventAgeInSeconds` (default 6 h),
//! then sent to the on-failure destination. The queue is durable and an attempt is counted before
//! it is made, so a restart redelivers what was queued (at least once) and an event that takes the
//! process down is not retried for ever.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lambda_events::s3::{S3Event, S3EventRecord};
use serde_json::Value;

use crate::{Backoff, BoxError, FunctionError, Observer, Target};

/// A function's `EventInvokeConfig`.
#[derive(Debug, Clone)]
pub struct AsyncConfig {
    /// Names the queue and its dead letters, e.g. `IngestFunction.Async`.
    pub name: String,
    pub maximum_retry_attempts: u32,
    pub maximum_event_age: Duration,
    /// The logical id of the on-failure destination, if any.
    pub on_failure: Option<String>,
}

impl AsyncConfig {
    /// Lambda's defaults: two retries, six hours.
    pub fn new(name: impl Into<String>) -> AsyncConfig {
        AsyncConfig {
            name: name.into(),
            maximum_retry_attempts: 2,
            maximum_event_age: Duration::from_secs(6 * 3600),
            on_failure: None,
        }
    }
}

/// One queued event.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    pub id: i64,
    pub created_ms: i64,
    /// Attempts made before this one.
    pub attempts: u32,
    pub record: Value,
}

/// Where a function's asynchronous events wait.
#[async_trait]
pub trait AsyncQueue: Send + Sync {
    /// The oldest events of `queue` due at `now_ms`, at most `limit`.
    async fn due(
        &self,
        queue: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<QueuedEvent>, BoxError>;
    /// When the next event of `queue` (not held back) is due, if any waits.
    async fn next_due(&self, queue: &str) -> Result<Option<i64>, BoxError>;
    /// Counts an attempt before it is made.
    async fn attempt(&self, id: i64) -> Result<(), BoxError>;
    /// The event is done with.
    async fn done(&self, id: i64) -> Result<(), BoxError>;
    /// Try again at `at_ms`.
    async fn retry_at(&self, id: i64, at_ms: i64) -> Result<(), BoxError>;
    /// Gives up on the event: it goes to the on-failure destination, with why.
    async fn give_up(
        &self,
        queue: &str,
        event: QueuedEvent,
        reason: String,
    ) -> Result<(), BoxError>;
}

/// A function invoked asynchronously with S3 events.
#[async_trait]
pub trait AsyncFunction: Send + Sync {
    async fn invoke(&self, event: S3Event) -> Result<(), FunctionError>;
}

/// What one [`AsyncInvoker::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncStep {
    /// Nothing queued.
    Idle,
    /// Events wait for a retry: the first is due after this pause.
    Waiting(Duration),
    /// Delivered (or gave up on) events.
    Progressed,
}

/// What an invoker runs on: the queue its events wait in, who is told what it does, and how long
/// it pauses between retries (Lambda waits about a minute, then two).
#[derive(Clone)]
pub struct AsyncRuntime {
    pub queue: Arc<dyn AsyncQueue>,
    pub observer: Arc<dyn Observer>,
    pub backoff: Backoff,
}

/// Delivers one function's queue.
pub struct AsyncInvoker {
    function: String,
    config: Arc<AsyncConfig>,
    queue: Arc<dyn AsyncQueue>,
    target: Arc<dyn AsyncFunction>,
    observer: Arc<dyn Observer>,
    backoff: Backoff,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl AsyncInvoker {
    /// `target.name` labels what the observer reports.
    pub fn new(
        target: Target<dyn AsyncFunction>,
        config: Arc<AsyncConfig>,
        runtime: AsyncRuntime,
    ) -> AsyncInvoker {
        AsyncInvoker {
            function: target.name,
            config,
            queue: runtime.queue,
            target: target.function,
            observer: runtime.observer,
            backoff: runtime.backoff,
        }
    }

    pub fn config(&self) -> &AsyncConfig {
        &self.config
    }

    /// Delivers every event due now, one invocation each.
    pub async fn step(&self) -> Result<AsyncStep, BoxError> {
        let now = now_ms();
        let due = self.queue.due(&self.config.name, now, 32).await?;
        if due.is_empty() {
            return Ok(match self.queue.next_due(&self.config.name).await? {
                Some(at) => AsyncStep::Waiting(Duration::from_millis((at - now).max(0) as u64)),
                None => AsyncStep::Idle,
            });
        }
        for event in due {
            self.deliver(event, now).await?;
        }
        Ok(AsyncStep::Progressed)
    }

    async fn deliver(&self, event: QueuedEvent, now: i64) -> Result<(), BoxError> {
        let f = self.function.as_str();
        if now - event.created_ms > self.config.maximum_event_age.as_millis() as i64 {
            self.observer.dead_lettered(f, 1);
            let reason = "event is older than MaximumEventAgeInSeconds".to_owned();
            return self.queue.give_up(&self.config.name, event, reason).await;
        }
        // A previous attempt that never finished (the process died in it) counts too.
        if event.attempts > self.config.maximum_retry_attempts {
            self.observer.dead_lettered(f, 1);
            let reason = format!(
                "retries exhausted: {} attempts, the last one did not finish (the process stopped)",
                event.attempts
            );
            return self.queue.give_up(&self.config.name, event, reason).await;
        }
        let record: S3EventRecord = match serde_json::from_value(event.record.clone()) {
            Ok(r) => r,
            Err(e) => {
                self.observer.dead_lettered(f, 1);
                let reason = format!("not an S3 event record: {e}");
                return self.queue.give_up(&self.config.name, event, reason).await;
            }
        };
        self.queue.attempt(event.id).await?;
        let mut s3 = S3Event::default();
        s3.records = vec![record];
        self.observer
            .invoked(f, 1, (now - event.created_ms).max(0) as f64 / 1000.0);
        let started = std::time::Instant::now();
        let result = self.target.invoke(s3).await;
        self.observer.duration(f, started.elapsed().as_secs_f64());
        match result {
            Ok(()) => self.queue.done(event.id).await,
            Err(error) => {
                self.observer.error(f);
                let attempts = event.attempts + 1;
                if attempts > self.config.maximum_retry_attempts {
                    self.observer.dead_lettered(f, 1);
                    let reason = format!("retries exhausted: function error: {error}");
                    return self.queue.give_up(&self.config.name, event, reason).await;
                }
                tracing::warn!(function = f, event = event.id, attempts, %error, "async event will be retried");
                let pause = self.backoff.after(attempts);
                self.queue
                    .retry_at(event.id, now_ms() + pause.as_millis() as i64)
                    .await
            }
        }
    }
}
