//! A function's event sources, as the engine runs them, and what it refuses: every property of a
//! `Type: DynamoDB`, `S3` or `SQS` event and of `EventInvokeConfig` that is not listed here as
//! emulated is refused by name, as is any other event type.

use std::time::Duration;

use event_source_mapping::async_invoke::AsyncConfig;
use event_source_mapping::queue::QueueMappingConfig;
use event_source_mapping::MappingConfig;
use lambda_filter::FilterCriteria;
use serde_norway::Value;

use crate::bucket::{notification, NotificationRule, BUCKET_PROPERTIES};
use crate::expr::Expr;
use crate::yaml::{boolean, field, int, invalid, not_emulated, only, scalar};
use crate::TemplateError;

/// One of a function's `Events`.
#[derive(Debug, Clone)]
pub struct Event {
    /// `LogicalId.EventName`, e.g. `ProcessFunction.Uploads`: names the mapping's checkpoint.
    pub name: String,
    /// `Enabled: false` turns a mapping off; the engine then does not run it.
    pub enabled: bool,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub enum Source {
    /// `Type: Api` (or `HttpApi`): one route of the API.
    Api(Route),
    /// `Type: DynamoDB`: a mapping on the stream of `table` (a logical id).
    Stream {
        table: String,
        mapping: MappingConfig,
    },
    /// `Type: S3`: a notification rule of `bucket` (a logical id).
    Bucket {
        bucket: String,
        rule: NotificationRule,
    },
    /// `Type: SQS`: a mapping on a queue of the template.
    Queue(QueueMappingConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
}

/// Properties of a `Type: DynamoDB` event the engine honours (or, for the last three, honours at
/// the one value it emulates).
const STREAM_PROPERTIES: &[&str] = &[
    "Stream",
    "StartingPosition",
    "BatchSize",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError",
    "FunctionResponseTypes",
    "DestinationConfig",
    "FilterCriteria",
    "Enabled",
    "ParallelizationFactor",
    "MaximumBatchingWindowInSeconds",
    "TumblingWindowInSeconds",
];
const QUEUE_PROPERTIES: &[&str] = &[
    "Queue",
    "BatchSize",
    "FunctionResponseTypes",
    "Enabled",
    "MaximumBatchingWindowInSeconds",
];
/// `RestApiId`: the engine serves one API; `Auth`: it serves every route on loopback, without keys.
const API_PROPERTIES: &[&str] = &["Path", "Method", "RestApiId", "Auth"];
const INVOKE_CONFIG_PROPERTIES: &[&str] = &[
    "MaximumRetryAttempts",
    "MaximumEventAgeInSeconds",
    "DestinationConfig",
];

impl Event {
    pub(crate) fn parse(function: &str, event: &str, ev: &Value) -> Result<Event, TemplateError> {
        let at = format!("{function}.{event}");
        let props = field(ev, "Properties").unwrap_or(&Value::Null);
        let kind = field(ev, "Type").and_then(scalar).unwrap_or_default();
        let source = match kind.as_str() {
            "Api" | "HttpApi" => {
                only(props, API_PROPERTIES, &at)?;
                let get = |k: &str| field(props, k).and_then(scalar);
                let (Some(method), Some(path)) = (get("Method"), get("Path")) else {
                    return Err(invalid(&at, "an Api event needs Method and Path".into()));
                };
                Source::Api(Route {
                    method: method.to_ascii_uppercase(),
                    path,
                })
            }
            "DynamoDB" => {
                only(props, STREAM_PROPERTIES, &at)?;
                let table = field(props, "Stream")
                    .map(Expr::parse)
                    .filter(
                        |e| matches!(e, Expr::GetAtt { attribute, .. } if attribute == "StreamArn"),
                    )
                    .and_then(|e| e.resource_named().map(str::to_owned))
                    .ok_or_else(|| {
                        invalid(&at, "Stream must be !GetAtt <a table>.StreamArn".into())
                    })?;
                Source::Stream {
                    table,
                    mapping: stream_mapping(&at, props)?,
                }
            }
            "S3" => {
                only(props, BUCKET_PROPERTIES, &at)?;
                let bucket = field(props, "Bucket")
                    .map(Expr::parse)
                    .and_then(|e| match e {
                        Expr::Ref(bucket) => Some(bucket),
                        _ => None,
                    })
                    .ok_or_else(|| invalid(&at, "Bucket must be !Ref <a bucket>".into()))?;
                Source::Bucket {
                    bucket,
                    rule: notification(event, &at, props)?,
                }
            }
            "SQS" => {
                only(props, QUEUE_PROPERTIES, &at)?;
                Source::Queue(queue_mapping(&at, props)?)
            }
            other => {
                return Err(not_emulated(
                    &at,
                    &format!("Type: {other}"),
                    "the local engine runs Api, DynamoDB, S3 and SQS events only",
                ))
            }
        };
        Ok(Event {
            name: at.clone(),
            enabled: boolean(props, "Enabled", &at)?.unwrap_or(true),
            source,
        })
    }
}

/// A whole-number property that the engine emulates at `emulated` only.
fn only_at(p: &Value, key: &str, emulated: i64, why: &str, at: &str) -> Result<(), TemplateError> {
    match int(p, key, at)? {
        Some(n) if n != emulated => Err(not_emulated(at, &format!("{key}: {n}"), why)),
        _ => Ok(()),
    }
}

/// `FunctionResponseTypes`: only `ReportBatchItemFailures` exists.
fn report_batch_item_failures(p: &Value, at: &str) -> Result<bool, TemplateError> {
    let mut report = false;
    for t in field(p, "FunctionResponseTypes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        match scalar(t).as_deref() {
            Some("ReportBatchItemFailures") => report = true,
            other => {
                return Err(not_emulated(
                    at,
                    &format!("FunctionResponseTypes: {other:?}"),
                    "only ReportBatchItemFailures exists",
                ))
            }
        }
    }
    Ok(report)
}

/// `DestinationConfig.OnFailure`: a queue of the template (its logical id). `OnSuccess` is refused.
fn on_failure(p: &Value, at: &str) -> Result<Option<String>, TemplateError> {
    let Some(config) = field(p, "DestinationConfig") else {
        return Ok(None);
    };
    only(config, &["OnFailure"], at)?;
    let Some(on_failure) = field(config, "OnFailure") else {
        return Ok(None);
    };
    match field(on_failure, "Type").and_then(scalar).as_deref() {
        None | Some("SQS") => {}
        Some(other) => {
            return Err(not_emulated(
                at,
                &format!("DestinationConfig.OnFailure.Type: {other}"),
                "the engine's on-failure destinations are SQS queues of the template",
            ))
        }
    }
    field(on_failure, "Destination")
        .map(Expr::parse)
        .and_then(|e| e.resource_named().map(str::to_owned))
        .map(Some)
        .ok_or_else(|| {
            invalid(
                at,
                "DestinationConfig.OnFailure.Destination must be !GetAtt <a queue>.Arn".into(),
            )
        })
}

fn stream_mapping(at: &str, p: &Value) -> Result<MappingConfig, TemplateError> {
    only_at(
        p,
        "ParallelizationFactor",
        1,
        "the engine reads each shard with one reader per mapping, which keeps an item's records in order",
        at,
    )?;
    only_at(
        p,
        "TumblingWindowInSeconds",
        0,
        "the engine keeps no aggregation state between invocations",
        at,
    )?;
    only_at(
        p,
        "MaximumBatchingWindowInSeconds",
        0,
        "the engine invokes as soon as records are there",
        at,
    )?;
    match field(p, "StartingPosition").and_then(scalar).as_deref() {
        None | Some("TRIM_HORIZON") => {}
        Some(other) => {
            return Err(not_emulated(
                at,
                &format!("StartingPosition: {other}"),
                "a mapping reads its stream from the start (TRIM_HORIZON)",
            ))
        }
    }
    let batch_size = int(p, "BatchSize", at)?.unwrap_or(100);
    if !(1..=10_000).contains(&batch_size) {
        return Err(invalid(
            at,
            format!("BatchSize {batch_size} is not in 1..=10000"),
        ));
    }
    let maximum_retry_attempts = match int(p, "MaximumRetryAttempts", at)?.unwrap_or(-1) {
        -1 => None,
        n @ 0..=10_000 => Some(n as u32),
        n => {
            return Err(invalid(
                at,
                format!("MaximumRetryAttempts {n} is not in -1..=10000"),
            ))
        }
    };
    let maximum_record_age = match int(p, "MaximumRecordAgeInSeconds", at)?.unwrap_or(-1) {
        -1 => None,
        n @ 60..=604_800 => Some(Duration::from_secs(n as u64)),
        n => {
            return Err(invalid(
                at,
                format!("MaximumRecordAgeInSeconds {n} is not -1 or 60..=604800"),
            ))
        }
    };
    let patterns: Vec<String> = field(p, "FilterCriteria")
        .and_then(|f| field(f, "Filters"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|f| {
            field(f, "Pattern")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| invalid(at, "every filter needs a Pattern string".into()))
        })
        .collect::<Result<_, _>>()?;
    let filters = FilterCriteria::parse(&patterns).map_err(|e| invalid(at, e.to_string()))?;
    Ok(MappingConfig {
        name: at.to_owned(),
        batch_size: batch_size as usize,
        filters,
        maximum_retry_attempts,
        maximum_record_age,
        bisect_on_error: boolean(p, "BisectBatchOnFunctionError", at)?.unwrap_or(false),
        report_batch_item_failures: report_batch_item_failures(p, at)?,
        on_failure: on_failure(p, at)?,
    })
}

fn queue_mapping(at: &str, p: &Value) -> Result<QueueMappingConfig, TemplateError> {
    only_at(
        p,
        "MaximumBatchingWindowInSeconds",
        0,
        "the engine invokes as soon as messages are there",
        at,
    )?;
    let queue = field(p, "Queue")
        .map(Expr::parse)
        .filter(|e| matches!(e, Expr::GetAtt { attribute, .. } if attribute == "Arn"))
        .and_then(|e| e.resource_named().map(str::to_owned))
        .ok_or_else(|| invalid(at, "Queue must be !GetAtt <a queue>.Arn".into()))?;
    let batch_size = int(p, "BatchSize", at)?.unwrap_or(10);
    if !(1..=10).contains(&batch_size) {
        return Err(invalid(
            at,
            format!("BatchSize {batch_size} is not in 1..=10 (without a batching window)"),
        ));
    }
    Ok(QueueMappingConfig {
        name: at.to_owned(),
        queue,
        batch_size: batch_size as usize,
        report_batch_item_failures: report_batch_item_failures(p, at)?,
    })
}

/// A function's `EventInvokeConfig` (retries 0..=2, event age 60..=21600 s), else Lambda's
/// defaults. Its queue is named `LogicalId.Async`.
pub(crate) fn async_config(
    logical_id: &str,
    props: Option<&Value>,
) -> Result<AsyncConfig, TemplateError> {
    let at = format!("{logical_id}.EventInvokeConfig");
    let mut config = AsyncConfig::new(format!("{logical_id}.Async"));
    let Some(c) = props.and_then(|p| field(p, "EventInvokeConfig")) else {
        return Ok(config);
    };
    only(c, INVOKE_CONFIG_PROPERTIES, &at)?;
    match int(c, "MaximumRetryAttempts", &at)? {
        None => {}
        Some(n @ 0..=2) => config.maximum_retry_attempts = n as u32,
        Some(_) => return Err(invalid(&at, "MaximumRetryAttempts must be 0..=2".into())),
    }
    match int(c, "MaximumEventAgeInSeconds", &at)? {
        None => {}
        Some(n @ 60..=21_600) => config.maximum_event_age = Duration::from_secs(n as u64),
        Some(_) => {
            return Err(invalid(
                &at,
                "MaximumEventAgeInSeconds must be 60..=21600".into(),
            ))
        }
    }
    config.on_failure = on_failure(c, &at)?;
    Ok(config)
}
