//! One stream mapping at work: [`Dispatcher::step`] reads past the checkpoint, filters, drops
//! expired records, invokes, and reads the answer (partial failures, bisection, retries, the
//! on-failure destination), as the crate's header describes.
//!
//! Over 400 lines: one step's decisions read in the order Lambda documents them, and share the
//! batch in hand and the retry state; split, each part would need the others'.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::dynamodb::{Event, EventRecord};
use serde::Deserialize;

use crate::{
    Backoff, Checkpoints, Cursor, DeadLetter, InFlight, MappingConfig, MappingError, Observer,
    RecordSource, SourceRecord, StreamFunction, Target,
};

/// How many source records one step looks at, at most.
const SCAN_WINDOW: u64 = 2_000;
/// How many records one read of the source fetches.
const SCAN_CHUNK: usize = 128;

/// What a mapping runs on: where its records come from, where it keeps its place, who is told
/// what it does, and how long it pauses between retries.
#[derive(Clone)]
pub struct MappingRuntime {
    pub source: Arc<dyn RecordSource>,
    pub checkpoints: Arc<dyn Checkpoints>,
    pub observer: Arc<dyn Observer>,
    pub backoff: Backoff,
}

/// What one [`Dispatcher::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing after the checkpoint.
    Idle,
    /// The checkpoint moved.
    Progressed,
    /// A batch failed; try again after this pause.
    Retrying(Duration),
}

/// A failing batch being retried (or bisected).
struct Retry {
    /// Position of the batch's first record.
    first: u64,
    attempts: u32,
    /// Batch size while bisecting.
    limit: usize,
}

/// One event source mapping at work. Call [`Dispatcher::step`] in a loop.
pub struct Dispatcher {
    function: String,
    mapping: Arc<MappingConfig>,
    source: Arc<dyn RecordSource>,
    checkpoints: Arc<dyn Checkpoints>,
    target: Arc<dyn StreamFunction>,
    observer: Arc<dyn Observer>,
    backoff: Backoff,
    /// The cursor has been read once: an attempt in flight found after that is this process's own.
    started: bool,
    retry: Option<Retry>,
    /// The stored cursor had an attempt in flight: the last process died while invoking it.
    crashed: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Dispatcher {
    /// `target.name` labels what the observer reports.
    pub fn new(
        target: Target<dyn StreamFunction>,
        mapping: Arc<MappingConfig>,
        runtime: MappingRuntime,
    ) -> Dispatcher {
        Dispatcher {
            function: target.name,
            mapping,
            source: runtime.source,
            checkpoints: runtime.checkpoints,
            target: target.function,
            observer: runtime.observer,
            backoff: runtime.backoff,
            started: false,
            retry: None,
            crashed: false,
        }
    }

    pub fn mapping(&self) -> &MappingConfig {
        &self.mapping
    }

    pub fn source(&self) -> &Arc<dyn RecordSource> {
        &self.source
    }

    fn source_error(&self, e: crate::BoxError) -> MappingError {
        MappingError::Source {
            mapping: self.mapping.name.clone(),
            source: e,
        }
    }

    fn checkpoint_error(&self, e: crate::BoxError) -> MappingError {
        MappingError::Checkpoint {
            mapping: self.mapping.name.clone(),
            source: e,
        }
    }

    /// The cursor, read at every step (another process, such as `uploader replay`, may move it).
    /// An attempt found in flight at the first read is a crash of the last process, to count.
    async fn cursor(&mut self) -> Result<Cursor, MappingError> {
        let c = self
            .checkpoints
            .cursor(&self.mapping.name)
            .await
            .map_err(|e| self.checkpoint_error(e))?;
        if std::mem::replace(&mut self.started, true) {
            return Ok(c);
        }
        if let Some(f) = c.in_flight {
            tracing::warn!(
                mapping = %self.mapping.name, first = f.first, attempts = f.attempts,
                "the last process stopped while invoking this batch; counting it as a failed attempt"
            );
            self.retry = Some(Retry {
                first: f.first,
                attempts: f.attempts,
                limit: f.limit,
            });
            self.crashed = true;
        }
        Ok(c)
    }

    async fn save(&mut self, cursor: Cursor) -> Result<(), MappingError> {
        self.checkpoints
            .save(&self.mapping.name, cursor)
            .await
            .map_err(|e| self.checkpoint_error(e))
    }

    /// Delivers at most one batch.
    pub async fn step(&mut self) -> Result<Step, MappingError> {
        let cursor = self.cursor().await?;
        let checkpoint = cursor.position;
        let limit = self
            .retry
            .as_ref()
            .map_or(self.mapping.batch_size, |r| r.limit);
        let now = now_ms();
        let mut batch: Vec<SourceRecord> = Vec::new();
        let mut expired: Vec<SourceRecord> = Vec::new();
        let mut filtered: Vec<u64> = Vec::new();
        let mut end = checkpoint;
        // Read in small chunks until the batch is full: under a backlog, a step parses about what it
        // delivers, not the whole window.
        'scan: loop {
            let chunk = self
                .source
                .read(end, SCAN_CHUNK)
                .await
                .map_err(|e| self.source_error(e))?;
            let read = chunk.len();
            for record in chunk {
                let position = record.position;
                if !self.mapping.filters.matches(&record.record) {
                    filtered.push(position);
                } else if batch.is_empty() && self.is_expired(&record, now) {
                    // Lambda drops records past their age before invoking; they are oldest, so first.
                    expired.push(record);
                } else if batch.len() == limit {
                    break 'scan;
                } else {
                    batch.push(record);
                }
                end = position;
            }
            if read < SCAN_CHUNK || end - checkpoint >= SCAN_WINDOW {
                break;
            }
        }
        if end == checkpoint {
            return Ok(Step::Idle);
        }
        if !expired.is_empty() {
            let last = expired.last().map_or(checkpoint, |r| r.position);
            let through = batch
                .first()
                .map_or(end, |first| first.position - 1)
                .max(last);
            let reason = "record is older than MaximumRecordAgeInSeconds";
            self.dead_letter(expired, reason, through).await?;
            self.count_filtered(&filtered, through);
            return Ok(Step::Progressed);
        }
        if batch.is_empty() {
            self.commit(end, &filtered).await?;
            return Ok(Step::Progressed);
        }

        let event = match event_of(&batch) {
            Ok(event) => event,
            Err(why) => {
                // Lambda would hand the function a batch it cannot read: a function error.
                self.observer.error(&self.function);
                let bisect = self.mapping.bisect_on_error;
                return self.failed(batch, None, &why, bisect, end, &filtered).await;
            }
        };
        if std::mem::take(&mut self.crashed) {
            self.observer.error(&self.function);
            let reason =
                "the process stopped while this batch was being invoked (a crash or a kill)";
            let bisect = self.mapping.bisect_on_error;
            return self
                .failed(batch, None, reason, bisect, end, &filtered)
                .await;
        }
        let first = batch[0].position;
        let attempts = match &self.retry {
            Some(r) if r.first == first => r.attempts,
            _ => 0,
        };
        // Durable before the call: if the call takes the process down, the restart knows.
        self.save(Cursor {
            position: checkpoint,
            in_flight: Some(InFlight {
                first,
                attempts,
                limit,
            }),
        })
        .await?;

        let newest = batch.last().map_or(now, |r| r.created_ms);
        self.observer.invoked(
            &self.function,
            batch.len(),
            (now - newest).max(0) as f64 / 1000.0,
        );
        let sequence_numbers: Vec<Option<String>> = event
            .records
            .iter()
            .map(|r| r.change.sequence_number.clone())
            .collect();
        let started = Instant::now();
        let result = self.target.invoke(event).await;
        self.observer
            .duration(&self.function, started.elapsed().as_secs_f64());

        let reason = match result {
            // Without ReportBatchItemFailures, Lambda ignores the answer.
            Ok(_) if !self.mapping.report_batch_item_failures => None,
            Ok(response) => {
                let failed: Option<Vec<String>> = response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier.filter(|id| !id.is_empty()))
                    .collect();
                match failed {
                    Some(failed) if failed.is_empty() => None,
                    Some(failed) => {
                        // Identifiers are the records' own SequenceNumbers; the lowest one in the
                        // batch is where Lambda resumes. One that names no record fails the batch.
                        let positions: Option<Vec<usize>> = failed
                            .iter()
                            .map(|id| {
                                sequence_numbers
                                    .iter()
                                    .position(|s| s.as_deref() == Some(id.as_str()))
                            })
                            .collect();
                        match positions.and_then(|p| p.into_iter().min()) {
                            Some(lowest) => {
                                self.observer.error(&self.function);
                                // Everything before the lowest failure is done.
                                let done = batch[lowest].position - 1;
                                self.commit(done, &filtered).await?;
                                let rest = batch.split_off(lowest);
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
                    None => Some("batchItemFailures holds an item without an identifier".into()),
                }
            }
            Err(error) => Some(format!("function error: {error}")),
        };
        match reason {
            None => {
                self.retry = None;
                self.commit(end, &filtered).await?;
                Ok(Step::Progressed)
            }
            Some(reason) => {
                self.observer.error(&self.function);
                let bisect = self.mapping.bisect_on_error;
                self.failed(batch, None, &reason, bisect, end, &filtered)
                    .await
            }
        }
    }

    fn is_expired(&self, record: &SourceRecord, now: i64) -> bool {
        self.mapping
            .maximum_record_age
            .is_some_and(|age| now - record.created_ms > age.as_millis() as i64)
    }

    /// `records` (oldest first, from the first failed one to the batch's end) failed; `reported`
    /// names the ones the function reported (`None`: the whole batch failed). Halve, retry, or give
    /// up on them.
    async fn failed(
        &mut self,
        records: Vec<SourceRecord>,
        reported: Option<Vec<String>>,
        reason: &str,
        may_bisect: bool,
        end: u64,
        filtered: &[u64],
    ) -> Result<Step, MappingError> {
        let first = records[0].position;
        let (attempts, limit) = match &self.retry {
            Some(r) if r.first == first => (r.attempts, r.limit),
            _ => (0, self.mapping.batch_size),
        };
        tracing::warn!(function = %self.function, first, records = records.len(), attempts, reason, "batch failed");
        if may_bisect && records.len() > 1 {
            // Bisection retries the halves; it does not count against the retry budget.
            self.retry = Some(Retry {
                first,
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
            let letters: Vec<SourceRecord> = match &reported {
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
            let reason = format!("retries exhausted: {reason}");
            self.dead_letter(letters, &reason, end).await?;
            self.count_filtered(filtered, end);
            return Ok(Step::Progressed);
        }
        self.retry = Some(Retry {
            first,
            attempts,
            limit,
        });
        Ok(Step::Retrying(self.backoff.after(attempts)))
    }

    async fn dead_letter(
        &mut self,
        records: Vec<SourceRecord>,
        reason: &str,
        through: u64,
    ) -> Result<(), MappingError> {
        self.observer.dead_lettered(&self.function, records.len());
        tracing::error!(function = %self.function, records = records.len(), reason, "sent to the on-failure destination");
        let letters = records
            .into_iter()
            .map(|record| DeadLetter {
                record,
                reason: reason.to_owned(),
            })
            .collect();
        let cursor = Cursor {
            position: through,
            in_flight: None,
        };
        self.checkpoints
            .dead_letter(&self.mapping.name, letters, cursor)
            .await
            .map_err(|e| self.checkpoint_error(e))
    }

    async fn commit(&mut self, position: u64, filtered: &[u64]) -> Result<(), MappingError> {
        self.observer.before_checkpoint();
        self.save(Cursor {
            position,
            in_flight: None,
        })
        .await?;
        self.count_filtered(filtered, position);
        Ok(())
    }

    /// Counts a dropped record once: when the checkpoint passes it.
    fn count_filtered(&self, filtered: &[u64], checkpoint: u64) {
        let passed = filtered.iter().filter(|&&s| s <= checkpoint).count();
        if passed > 0 {
            self.observer.filtered(&self.function, passed);
        }
    }
}

/// The event Lambda would send for `batch`; a record that is not a DynamoDB stream record makes
/// the batch unreadable, as it would make the function's runtime fail to unmarshal the event.
fn event_of(batch: &[SourceRecord]) -> Result<Event, String> {
    let records = batch
        .iter()
        .map(|r| {
            // From the borrowed value: no copy of the record to take apart.
            EventRecord::deserialize(&*r.record).map_err(|e| {
                format!(
                    "record at {} is not a DynamoDB stream record: {e}",
                    r.position
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut event = Event::default();
    event.records = records;
    Ok(event)
}
