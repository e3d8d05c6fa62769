use std::time::Duration;

use lambda_filter::FilterCriteria;

/// One event source mapping's settings, as `AWS::Lambda::EventSourceMapping` (or a SAM
/// `Type: DynamoDB` event) has them. A mapping reads its stream from the start
/// (`StartingPosition: TRIM_HORIZON`).
#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// Names the mapping's checkpoint and dead letters, e.g. `ProcessFunction.Uploads`.
    pub name: String,
    /// `BatchSize`: at most this many matching records per invocation.
    pub batch_size: usize,
    /// `FilterCriteria`.
    pub filters: FilterCriteria,
    /// `MaximumRetryAttempts`; `None`: retry until the record expires (Lambda's -1).
    pub maximum_retry_attempts: Option<u32>,
    /// `MaximumRecordAgeInSeconds`; `None`: records never expire (Lambda's -1).
    pub maximum_record_age: Option<Duration>,
    /// `BisectBatchOnFunctionError`.
    pub bisect_on_error: bool,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
    /// The logical id of the on-failure destination, if any.
    pub on_failure: Option<String>,
}

impl MappingConfig {
    /// A mapping with Lambda's defaults: batches of 100, no filter, retries until the record
    /// expires, no bisection, no partial answers, no destination.
    pub fn new(name: impl Into<String>) -> MappingConfig {
        MappingConfig {
            name: name.into(),
            batch_size: 100,
            filters: FilterCriteria::default(),
            maximum_retry_attempts: None,
            maximum_record_age: None,
            bisect_on_error: false,
            report_batch_item_failures: false,
            on_failure: None,
        }
    }
}
