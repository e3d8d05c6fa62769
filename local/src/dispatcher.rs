//! One event source mapping: reads the stream after its checkpoint, drops what its FilterCriteria
//! do not match, delivers batches as the JSON Lambda sends, and moves the checkpoint as Lambda does.
//!
//! - success: the checkpoint passes the whole batch;
//! - `batchItemFailures` (with ReportBatchItemFailures): the checkpoint moves to just before the
//!   lowest failed sequence number and the rest is delivered again; an identifier that names no
//!   record of the batch fails the whole batch;
//! - a function error: the whole batch is retried, halved first if BisectBatchOnFunctionError;
//! - after MaximumRetryAttempts retries, or past MaximumRecordAgeInSeconds, the records go to the
//!   on-failure destination (the dead-letter table) and the checkpoint passes them.
//!
//! There is one cursor per mapping, so the records of one item are delivered in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::db::{Database, StreamRecord};
use crate::faults::{CrashPoint, Faults};
use crate::metrics::Metrics;
use crate::template::StreamMapping;

/// How many stream records one step looks at, at most.
const SCAN_WINDOW: usize = 2_000;
/// How many records one read of the stream fetches.
const SCAN_CHUNK: usize = 128;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A function a mapping invokes: takes Lambda's event JSON, answers with the function's JSON, or
/// fails as a Lambda function error does.
#[async_trait]
pub trait StreamFunction: Send + Sync {
    async fn invoke(&self, event: Value) -> Result<Value, String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing after the checkpoint.
    Idle,
    /// The checkpoint moved.
    Progressed,
    /// A batch failed; try again after this pause.
    Retrying(Duration),
}

struct Retry {
    /// The first record of the failing batch.
    seq: u64,
    attempts: u32,
    /// Batch size while bisecting.
    limit: usize,
}

pub struct Dispatcher {
    function: String,
    mapping: Arc<StreamMapping>,
    db: Database,
    target: Arc<dyn StreamFunction>,
    metrics: Metrics,
    backoff: Duration,
    retry: Option<Retry>,
    faults: Faults,
}

impl Dispatcher {
    pub fn new(
        function: impl Into<String>,
        mapping: Arc<StreamMapping>,
        db: Database,
        target: Arc<dyn StreamFunction>,
        metrics: Metrics,
        backoff: Duration,
        faults: Faults,
    ) -> Dispatcher {
        let function = function.into();
        metrics.register_function(&function);
        Dispatcher {
            function,
            mapping,
            db,
            target,
            metrics,
            backoff,
            retry: None,
            faults,
        }
    }

    /// Delivers at most one batch.
    pub async fn step(&mut self) -> anyhow::Result<Step> {
        let checkpoint = self.db.checkpoint(&self.mapping.name).await?;
        let limit = self
            .retry
            .as_ref()
            .map_or(self.mapping.batch_size, |r| r.limit);
        let now = state::now_ms();
        let mut batch: Vec<StreamRecord> = Vec::new();
        let mut expired: Vec<StreamRecord> = Vec::new();
        let mut filtered: Vec<u64> = Vec::new();
        let mut end = checkpoint;
        // Read in small chunks until the batch is full: under a backlog, a step parses about what it
        // delivers, not the whole window.
        'scan: loop {
            let chunk = self.db.read_stream(end, SCAN_CHUNK).await?;
            let read = chunk.len();
            for record in chunk {
                let seq = record.seq;
                if !self.mapping.filters.matches(&record.record) {
                    filtered.push(seq);
                } else if batch.is_empty() && self.is_expired(&record, now) {
                    // Lambda drops records past their age before invoking; they are oldest, so first.
                    expired.push(record);
                } else if batch.len() == limit {
                    break 'scan;
                } else {
                    batch.push(record);
                }
                end = seq;
            }
            if read < SCAN_CHUNK || end - checkpoint >= SCAN_WINDOW as u64 {
                break;
            }
        }
        if end == checkpoint {
            return Ok(Step::Idle);
        }
        if !expired.is_empty() {
            let last = expired.last().map_or(checkpoint, |r| r.seq);
            let through = batch.first().map_or(end, |first| first.seq - 1).max(last);
            self.dead_letter(
                expired,
                "record is older than MaximumRecordAgeInSeconds",
                through,
            )
            .await?;
            self.count_filtered(&filtered, through);
            return Ok(Step::Progressed);
        }
        if batch.is_empty() {
            self.commit(end, &filtered).await?;
            return Ok(Step::Progressed);
        }

        let f = self.function.as_str();
        self.metrics.invocations.with_label_values(&[f]).inc();
        self.metrics
            .records_delivered
            .with_label_values(&[f])
            .inc_by(batch.len() as u64);
        let newest = batch.last().map_or(now, |r| r.created_ms);
        self.metrics
            .iterator_age
            .with_label_values(&[f])
            .set((now - newest).max(0) as f64 / 1000.0);
        let event = json!({ "Records": batch.iter().map(|r| &r.record).collect::<Vec<_>>() });
        let started = Instant::now();
        let result = self.target.invoke(event).await;
        self.metrics
            .duration
            .with_label_values(&[f])
            .observe(started.elapsed().as_secs_f64());

        let reason = match result {
            Ok(response) if !self.mapping.report_batch_item_failures => {
                let _ = response; // without ReportBatchItemFailures, Lambda ignores the answer
                None
            }
            Ok(response) => match failed_sequence_numbers(&response) {
                Ok(failed) if failed.is_empty() => None,
                Ok(failed) => {
                    // Identifiers are the records' own SequenceNumbers; the lowest one in the batch
                    // is where Lambda resumes. One that names no record fails the whole batch.
                    let positions: Option<Vec<usize>> = failed
                        .iter()
                        .map(|id| {
                            batch.iter().position(|r| {
                                r.record["dynamodb"]["SequenceNumber"].as_str() == Some(id)
                            })
                        })
                        .collect();
                    match positions.and_then(|p| p.into_iter().min()) {
                        Some(first) => {
                            self.metrics.errors.with_label_values(&[f]).inc();
                            // Everything before the lowest failure is done.
                            let done = batch[first].seq - 1;
                            self.commit(done, &filtered).await?;
                            let rest = batch.split_off(first);
                            let reason = "the function reported batch item failures";
                            return self
                                .failed(rest, Some(failed), reason, false, end, &filtered)
                                .await;
                        }
                        None => Some(format!(
                            "batchItemFailures names a record not in the batch: {failed:?}"
                        )),
                    }
                }
                Err(why) => Some(why),
            },
            Err(error) => Some(format!("function error: {error}")),
        };
        match reason {
            None => {
                self.retry = None;
                self.commit(end, &filtered).await?;
                Ok(Step::Progressed)
            }
            Some(reason) => {
                self.metrics.errors.with_label_values(&[f]).inc();
                let bisect = self.mapping.bisect_on_error;
                self.failed(batch, None, &reason, bisect, end, &filtered)
                    .await
            }
        }
    }

    fn is_expired(&self, record: &StreamRecord, now: i64) -> bool {
        self.mapping
            .maximum_record_age
            .is_some_and(|age| now - record.created_ms > age.as_millis() as i64)
    }

    /// `records` (oldest first, from the first failed one to the batch's end) failed; `reported`
    /// names the ones the function reported (`None`: the whole batch failed). Halve, retry, or give
    /// up on them.
    async fn failed(
        &mut self,
        records: Vec<StreamRecord>,
        reported: Option<Vec<String>>,
        reason: &str,
        may_bisect: bool,
        end: u64,
        filtered: &[u64],
    ) -> anyhow::Result<Step> {
        let first = records[0].seq;
        let (attempts, limit) = match &self.retry {
            Some(r) if r.seq == first => (r.attempts, r.limit),
            _ => (0, self.mapping.batch_size),
        };
        tracing::warn!(function = %self.function, first, records = records.len(), attempts, reason, "batch failed");
        if may_bisect && records.len() > 1 {
            // Bisection retries the halves; it does not count against the retry budget.
            self.retry = Some(Retry {
                seq: first,
                attempts,
                limit: (records.len() / 2).max(1).min(limit),
            });
            return Ok(Step::Retrying(Duration::ZERO));
        }
        let attempts = attempts + 1;
        if self
            .mapping
            .maximum_retry_attempts
            .is_some_and(|max| attempts > max)
        {
            self.retry = None;
            // Only what failed goes to the destination; the rest of the batch was done.
            let letters: Vec<StreamRecord> = match &reported {
                None => records,
                Some(ids) => records
                    .into_iter()
                    .filter(|r| {
                        r.record["dynamodb"]["SequenceNumber"]
                            .as_str()
                            .is_some_and(|s| ids.iter().any(|i| i == s))
                    })
                    .collect(),
            };
            self.dead_letter(letters, &format!("retries exhausted: {reason}"), end)
                .await?;
            self.count_filtered(filtered, end);
            return Ok(Step::Progressed);
        }
        self.retry = Some(Retry {
            seq: first,
            attempts,
            limit,
        });
        let pause = self
            .backoff
            .saturating_mul(1 << (attempts - 1).min(16))
            .min(MAX_BACKOFF);
        Ok(Step::Retrying(pause))
    }

    async fn dead_letter(
        &mut self,
        records: Vec<StreamRecord>,
        reason: &str,
        through: u64,
    ) -> anyhow::Result<()> {
        let f = self.function.as_str();
        self.metrics
            .dead_letters
            .with_label_values(&[f])
            .inc_by(records.len() as u64);
        tracing::error!(function = %f, records = records.len(), reason, "sent to the on-failure destination");
        self.db
            .dead_letter(&self.mapping.name, records, reason.to_owned(), through)
            .await
    }

    async fn commit(&mut self, checkpoint: u64, filtered: &[u64]) -> anyhow::Result<()> {
        self.faults.crash_point(CrashPoint::BeforeCheckpoint);
        self.db
            .set_checkpoint(&self.mapping.name, checkpoint)
            .await?;
        self.count_filtered(filtered, checkpoint);
        Ok(())
    }

    /// Counts a dropped record once: when the checkpoint passes it.
    fn count_filtered(&self, filtered: &[u64], checkpoint: u64) {
        let passed = filtered.iter().filter(|&&s| s <= checkpoint).count() as u64;
        self.metrics
            .records_filtered
            .with_label_values(&[self.function.as_str()])
            .inc_by(passed);
    }

    pub fn db_handle(&self) -> Database {
        self.db.clone()
    }
}

/// The sequence numbers a function's `batchItemFailures` names; a malformed answer is an error.
pub(crate) fn failed_sequence_numbers(response: &Value) -> Result<Vec<String>, String> {
    let Some(failures) = response.get("batchItemFailures") else {
        return Ok(Vec::new());
    };
    let Some(failures) = failures.as_array() else {
        return Err("batchItemFailures is not a list".into());
    };
    failures
        .iter()
        .map(|f| {
            f.get("itemIdentifier")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("malformed batch item failure {f}"))
        })
        .collect()
}
