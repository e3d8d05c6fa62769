//! The `failures` function: the consumer of the failure queue. When a stream mapping gives up on
//! records (retries exhausted, or too old), Lambda sends a description of the batch, not the
//! records, to the queue. This reads the records back from the stream and marks each one's item
//! stalled (when, which function, why), so nothing sits at an in-between status without a trace:
//! the item says so in `GET /items/{id}` and in the stalled query, and an alarm has fired on the
//! queue. `make redrive` clears the marks, which offers the items to their functions again.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use config_vars::{ConfigError, Vars};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use state::{
    GivenUpBatch, GivenUpRecords, ItemTable, ResourceError, Resources, StateError, Status,
};

/// The failures function's settings: template.yaml's `Environment` of `FailuresFunction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table_name: String,
    /// The functions' Lambda names (`PROCESS_FUNCTION`, ...), mapped to the names items use
    /// (`process`, ...).
    pub functions: HashMap<String, String>,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let mut functions = HashMap::new();
        for (key, name) in [
            ("PROCESS_FUNCTION", "process"),
            ("NOTICE_FUNCTION", "notice"),
            ("INGEST_FUNCTION", "ingest"),
        ] {
            functions.insert(vars.required(key)?, name.to_owned());
        }
        Ok(Config {
            table_name: vars.required("TABLE_NAME")?,
            functions,
        })
    }
}

pub struct Deps {
    pub table: Arc<dyn ItemTable>,
    pub records: Arc<dyn GivenUpRecords>,
    /// Lambda function names, mapped to the names items use (`process`, `notice`).
    pub functions: HashMap<String, String>,
}

/// The function's name in its metrics (template.yaml's binary).
pub const FUNCTION: &str = "failures";

impl Deps {
    /// The ports `config` names, from `resources` (the SDK's on Lambda, the engine's locally).
    pub fn new(config: Config, resources: &dyn Resources) -> Result<Deps, ResourceError> {
        pipeline_metrics::cold_start(FUNCTION);
        Ok(Deps {
            table: resources.table(&config.table_name)?,
            records: resources.given_up_records()?,
            functions: config.functions,
        })
    }
}

/// The handler never fails as a whole: a message it cannot act on is reported in its answer, so
/// SQS keeps it.
#[derive(Debug, thiserror::Error)]
pub enum FailuresError {}

impl From<FailuresError> for lambda_runtime::Diagnostic {
    fn from(e: FailuresError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "FailuresError".into(),
            error_message: e.to_string(),
        }
    }
}

/// Why a failure message is kept in the queue: SQS offers it again, and after its receives moves
/// it to the archive queue.
#[derive(Debug, thiserror::Error)]
pub enum Kept {
    #[error("not an on-failure record of a stream mapping or an asynchronous invocation: {0}")]
    Unreadable(#[source] serde_json::Error),
    #[error("the records {first}..{last} of {shard} are no longer in the stream: their items cannot be named")]
    RecordsGone {
        shard: String,
        first: String,
        last: String,
    },
    #[error("{key}: a drop-in given up on ({reason}); no item to mark")]
    DropIn { key: String, reason: String },
    #[error(transparent)]
    State(#[from] StateError),
}

/// What Lambda sends to a stream mapping's on-failure destination.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnFailure {
    pub request_context: RequestContext,
    #[serde(default)]
    pub response_context: Option<ResponseContext>,
    #[serde(rename = "DDBStreamBatchInfo")]
    pub batch: StreamBatchInfo,
}

/// What Lambda sends to an asynchronous invocation's on-failure destination: the event itself
/// (here, the bucket notification `ingest` gave up on).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncFailure {
    pub request_context: RequestContext,
    #[serde(default)]
    pub response_context: Option<ResponseContext>,
    pub request_payload: aws_lambda_events::s3::S3Event,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    pub function_arn: String,
    /// `RetryAttemptsExhausted` or `RecordAgeExceeded`.
    pub condition: String,
    #[serde(default)]
    pub approximate_invoke_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseContext {
    #[serde(default)]
    pub function_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamBatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub stream_arn: String,
    #[serde(default)]
    pub batch_size: Option<u64>,
}

impl OnFailure {
    /// Why the mapping gave up, as the item will say it.
    pub fn reason(&self) -> String {
        reason(&self.request_context, self.response_context.as_ref())
    }

    /// The function's name as items name it: `process` rather than `stack-ProcessFunction-X1`.
    pub fn function<'a>(&'a self, names: &'a HashMap<String, String>) -> &'a str {
        function(&self.request_context, names)
    }
}

/// The condition, and the function's error where there was one.
fn reason(request: &RequestContext, response: Option<&ResponseContext>) -> String {
    match response.and_then(|r| r.function_error.as_deref()) {
        Some(e) => format!("{} (function error: {e})", request.condition),
        None => request.condition.clone(),
    }
}

/// The name in the function's ARN, as `names` maps it (else as it is).
fn function<'a>(request: &'a RequestContext, names: &'a HashMap<String, String>) -> &'a str {
    let arn = &request.function_arn;
    let name = arn.split(':').nth(6).unwrap_or(arn);
    names.get(name).map_or(name, String::as_str)
}

/// Marks the items of every failure message; a message that hits an outage, or whose records
/// cannot be read any more, is reported so SQS keeps it (and, after its receives, moves it to the
/// archive queue, which has an alarm of its own).
pub async fn handle(
    event: LambdaEvent<SqsEvent>,
    deps: &Deps,
) -> Result<SqsBatchResponse, FailuresError> {
    let mut response = SqsBatchResponse::default();
    for message in &event.payload.records {
        if let Err(why) = consume(message, deps).await {
            tracing::error!(message_id = ?message.message_id, error = %why, "failure message kept");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

async fn consume(message: &SqsMessage, deps: &Deps) -> Result<(), Kept> {
    let body = message.body.as_deref().unwrap_or_default();
    if let Ok(failure) = serde_json::from_str::<AsyncFailure>(body) {
        return consume_async(&failure, deps).await;
    }
    let failure: OnFailure = serde_json::from_str(body).map_err(Kept::Unreadable)?;
    let batch = GivenUpBatch {
        stream_arn: failure.batch.stream_arn.clone(),
        shard_id: failure.batch.shard_id.clone(),
        first_sequence: failure.batch.start_sequence_number.clone(),
        last_sequence: failure.batch.end_sequence_number.clone(),
    };
    let records = deps.records.records(&batch).await?;
    if records.is_empty() {
        return Err(Kept::RecordsGone {
            shard: batch.shard_id,
            first: batch.first_sequence,
            last: batch.last_sequence,
        });
    }
    let (function, reason) = (failure.function(&deps.functions), failure.reason());
    for record in &records {
        match state::stream::mark_given_up(deps.table.as_ref(), record, function, &reason).await {
            Ok(_) => {}
            // A record that is not an item (or of an item since deleted): nothing to mark.
            Err(e @ (StateError::Corrupt { .. } | StateError::NotFound(_))) => {
                tracing::warn!(error = %e, "given-up record names no item")
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(records = records.len(), function, %reason, "given-up items marked stalled");
    Ok(())
}

/// A bucket notification `ingest` gave up on: the reservation it was for says so. (A drop-in has
/// no item yet: it is logged, and the message archived for an operator.)
async fn consume_async(failure: &AsyncFailure, deps: &Deps) -> Result<(), Kept> {
    let reason = reason(&failure.request_context, failure.response_context.as_ref());
    let function = function(&failure.request_context, &deps.functions);
    for record in &failure.request_payload.records {
        let raw = record.s3.object.key.as_deref().unwrap_or_default();
        let Some(id) = ingest::reservation_of(raw) else {
            return Err(Kept::DropIn {
                key: ingest::decoded_key(raw),
                reason,
            });
        };
        let stall = state::Stall::new(function, &reason, state::now_ms());
        deps.table.mark_stalled(id, Status::Pending, &stall).await?;
    }
    Ok(())
}
