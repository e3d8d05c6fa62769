//! What the engine takes from template.yaml: each function's binary, environment, API routes and
//! DynamoDB event source mapping. The filters and mapping settings are written once, there.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_norway::Value;

use event_source_mapping::async_invoke::AsyncConfig;
use event_source_mapping::MappingConfig;
use lambda_filter::FilterCriteria;

use crate::EngineError;

/// The template the engine was built with, so `uploader` works from any folder.
pub const EMBEDDED: &str = include_str!("../../template.yaml");

#[derive(Debug)]
pub struct Template {
    /// Parameter defaults (and overrides given to [`Template::parse`]).
    pub parameters: BTreeMap<String, String>,
    pub functions: Vec<Function>,
}

#[derive(Debug)]
pub struct Function {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`): which handler this is.
    pub binary: String,
    /// Environment variables whose values the template gives literally or through a parameter.
    pub environment: BTreeMap<String, String>,
    pub routes: Vec<Route>,
    pub stream: Option<MappingConfig>,
    /// The bucket notifications (`Type: S3` events) that invoke this function.
    pub notifications: Vec<NotificationRule>,
    /// How Lambda invokes it asynchronously (`EventInvokeConfig`, else Lambda's defaults).
    pub async_config: AsyncConfig,
    /// `MemorySize` in MB (the function's own, else Globals'): the process step's memory budget
    /// follows it.
    pub memory_size: Option<u64>,
}

/// One `Type: S3` event: which object events, and which keys (one prefix and one suffix at most,
/// as S3 allows), invoke the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRule {
    pub name: String,
    /// E.g. `s3:ObjectCreated:*`.
    pub events: Vec<String>,
    pub prefix: String,
    pub suffix: String,
}

impl NotificationRule {
    /// Whether an `event` (e.g. `s3:ObjectCreated:Put`) on `key` matches. Keys are compared as S3
    /// compares them: case-sensitively, in the URL-encoded form events carry.
    pub fn matches(&self, event: &str, encoded_key: &str) -> bool {
        let event_matches = self.events.iter().any(|e| match e.strip_suffix('*') {
            Some(stem) => event.starts_with(stem),
            None => event == e,
        });
        event_matches
            && encoded_key.starts_with(&self.prefix)
            && encoded_key.ends_with(&self.suffix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping().and_then(|m| m.get(key))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A scalar, or `!Ref Param` to a parameter: the value the engine can know without AWS.
fn resolve(v: &Value, parameters: &BTreeMap<String, String>) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => {
            scalar(&t.value).and_then(|p| parameters.get(&p).cloned())
        }
        Value::Mapping(m) if m.len() == 1 => m
            .get("Ref")
            .and_then(scalar)
            .and_then(|p| parameters.get(&p).cloned()),
        other => scalar(other),
    }
}

impl Template {
    /// Parses `text`; `overrides` replace parameter defaults (as `--parameter-overrides` does).
    pub fn parse(
        text: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Template, EngineError> {
        let bad = |why: String| EngineError::Template(why);
        let doc: Value = serde_norway::from_str(text).map_err(|e| bad(format!("not YAML: {e}")))?;

        let mut parameters = BTreeMap::new();
        if let Some(params) = field(&doc, "Parameters").and_then(Value::as_mapping) {
            for (name, spec) in params {
                let (Some(name), Some(default)) =
                    (scalar(name), field(spec, "Default").and_then(scalar))
                else {
                    continue;
                };
                parameters.insert(name, default);
            }
        }
        parameters.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));

        let globals_env = field(&doc, "Globals")
            .and_then(|g| field(g, "Function"))
            .and_then(|f| field(f, "Environment"))
            .and_then(|e| field(e, "Variables"));

        let globals_memory = field(&doc, "Globals")
            .and_then(|g| field(g, "Function"))
            .and_then(|f| field(f, "MemorySize"));

        let resources = field(&doc, "Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| bad("no Resources".into()))?;
        let mut functions = Vec::new();
        for (id, res) in resources {
            if field(res, "Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let logical_id = scalar(id).unwrap_or_default();
            let binary = field(res, "Metadata")
                .and_then(|m| field(m, "BuildProperties"))
                .and_then(|b| field(b, "Binary"))
                .and_then(scalar)
                .ok_or_else(|| bad(format!("{logical_id}: no Metadata.BuildProperties.Binary")))?;
            let props = field(res, "Properties");
            let mut environment = BTreeMap::new();
            let own_env = props
                .and_then(|p| field(p, "Environment"))
                .and_then(|e| field(e, "Variables"));
            for vars in [globals_env, own_env].into_iter().flatten() {
                for (k, v) in vars.as_mapping().into_iter().flatten() {
                    if let (Some(k), Some(v)) = (scalar(k), resolve(v, &parameters)) {
                        environment.insert(k, v);
                    }
                }
            }
            let mut routes = Vec::new();
            let mut stream = None;
            let mut notifications = Vec::new();
            for (ev_id, ev) in props
                .and_then(|p| field(p, "Events"))
                .and_then(Value::as_mapping)
                .into_iter()
                .flatten()
            {
                let ev_name = scalar(ev_id).unwrap_or_default();
                let ev_props = field(ev, "Properties");
                match field(ev, "Type").and_then(Value::as_str) {
                    Some("Api") | Some("HttpApi") => {
                        let get = |k: &str| ev_props.and_then(|p| field(p, k)).and_then(scalar);
                        let (Some(method), Some(path)) = (get("Method"), get("Path")) else {
                            return Err(bad(format!(
                                "{logical_id}.{ev_name}: Api event needs Method and Path"
                            )));
                        };
                        routes.push(Route {
                            method: method.to_ascii_uppercase(),
                            path,
                        });
                    }
                    Some("DynamoDB") => {
                        let p = ev_props
                            .ok_or_else(|| bad(format!("{logical_id}.{ev_name}: no Properties")))?;
                        if stream.is_some() {
                            return Err(bad(format!("{logical_id}: more than one DynamoDB event")));
                        }
                        stream = Some(parse_mapping(&format!("{logical_id}.{ev_name}"), p)?);
                    }
                    Some("S3") => {
                        let p = ev_props
                            .ok_or_else(|| bad(format!("{logical_id}.{ev_name}: no Properties")))?;
                        notifications.push(parse_notification(&ev_name, p)?);
                    }
                    _ => {}
                }
            }
            let async_config = parse_async(&logical_id, props)?;
            let memory_size = match props
                .and_then(|p| field(p, "MemorySize"))
                .or(globals_memory)
            {
                None => None,
                Some(v) => Some(
                    resolve(v, &parameters)
                        .and_then(|m| m.parse::<u64>().ok())
                        .ok_or_else(|| bad(format!("{logical_id}: MemorySize is not a number")))?,
                ),
            };
            functions.push(Function {
                logical_id,
                binary,
                environment,
                routes,
                stream,
                notifications,
                async_config,
                memory_size,
            });
        }
        Ok(Template {
            parameters,
            functions,
        })
    }

    pub fn function(&self, binary: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.binary == binary)
    }

    /// The DynamoDB event source mapping of the function built from `binary`.
    pub fn mapping(&self, binary: &str) -> Option<&MappingConfig> {
        self.function(binary).and_then(|f| f.stream.as_ref())
    }
}

/// One `Type: DynamoDB` event's properties as the mapping's settings.
fn parse_mapping(name: &str, p: &Value) -> Result<MappingConfig, EngineError> {
    let bad = |why: String| EngineError::Template(format!("{name}: {why}"));
    let int = |k: &str| -> Result<Option<i64>, EngineError> {
        match field(p, k) {
            None => Ok(None),
            Some(v) => scalar(v)
                .and_then(|s| s.parse::<i64>().ok())
                .map(Some)
                .ok_or_else(|| bad(format!("{k} must be a whole number"))),
        }
    };
    let batch_size = int("BatchSize")?.unwrap_or(100);
    if !(1..=10_000).contains(&batch_size) {
        return Err(bad(format!("BatchSize {batch_size} is not in 1..=10000")));
    }
    let maximum_retry_attempts = match int("MaximumRetryAttempts")?.unwrap_or(-1) {
        -1 => None,
        n @ 0..=10_000 => Some(n as u32),
        n => {
            return Err(bad(format!(
                "MaximumRetryAttempts {n} is not in -1..=10000"
            )))
        }
    };
    let maximum_record_age = match int("MaximumRecordAgeInSeconds")?.unwrap_or(-1) {
        -1 => None,
        n @ 60..=604_800 => Some(Duration::from_secs(n as u64)),
        n => {
            return Err(bad(format!(
                "MaximumRecordAgeInSeconds {n} is not -1 or 60..=604800"
            )))
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
                .ok_or_else(|| bad("every filter needs a Pattern string".into()))
        })
        .collect::<Result<_, _>>()?;
    let filters = FilterCriteria::parse(&patterns).map_err(|e| bad(e.to_string()))?;
    let report_batch_item_failures = field(p, "FunctionResponseTypes")
        .and_then(Value::as_sequence)
        .is_some_and(|s| {
            s.iter()
                .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
        });
    let on_failure = field(p, "DestinationConfig")
        .and_then(|d| field(d, "OnFailure"))
        .and_then(|o| field(o, "Destination"))
        .map(|d| match d {
            Value::Tagged(t) => scalar(&t.value)
                .map(|s| s.split('.').next().unwrap_or_default().to_owned())
                .unwrap_or_default(),
            other => scalar(other).unwrap_or_default(),
        });
    Ok(MappingConfig {
        name: name.to_owned(),
        batch_size: batch_size as usize,
        filters,
        maximum_retry_attempts,
        maximum_record_age,
        bisect_on_error: field(p, "BisectBatchOnFunctionError")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        report_batch_item_failures,
        on_failure,
        starting_position: field(p, "StartingPosition")
            .and_then(scalar)
            .unwrap_or_else(|| "TRIM_HORIZON".into()),
    })
}

/// One `Type: S3` event's properties.
fn parse_notification(name: &str, p: &Value) -> Result<NotificationRule, EngineError> {
    let bad = |why: &str| EngineError::Template(format!("{name}: {why}"));
    let events = match field(p, "Events") {
        Some(Value::Sequence(list)) => list.iter().filter_map(scalar).collect(),
        Some(one) => scalar(one).into_iter().collect(),
        None => return Err(bad("an S3 event needs Events")),
    };
    let (mut prefix, mut suffix) = (String::new(), String::new());
    for rule in field(p, "Filter")
        .and_then(|f| field(f, "S3Key"))
        .and_then(|k| field(k, "Rules"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let value = field(rule, "Value").and_then(scalar).unwrap_or_default();
        match field(rule, "Name").and_then(scalar).as_deref() {
            Some("prefix") => prefix = value,
            Some("suffix") => suffix = value,
            other => return Err(bad(&format!("unknown S3Key rule {other:?}"))),
        }
    }
    Ok(NotificationRule {
        name: name.to_owned(),
        events,
        prefix,
        suffix,
    })
}

/// A function's `EventInvokeConfig` (retries 0..=2, event age 60..=21600 s), else the defaults.
fn parse_async(logical_id: &str, props: Option<&Value>) -> Result<AsyncConfig, EngineError> {
    let bad = |why: String| EngineError::Template(format!("{logical_id}.EventInvokeConfig: {why}"));
    let mut config = AsyncConfig::new(format!("{logical_id}.Async"));
    let Some(c) = props.and_then(|p| field(p, "EventInvokeConfig")) else {
        return Ok(config);
    };
    let int = |k: &str| field(c, k).and_then(scalar).map(|s| s.parse::<i64>());
    if let Some(n) = int("MaximumRetryAttempts") {
        match n {
            Ok(n @ 0..=2) => config.maximum_retry_attempts = n as u32,
            _ => return Err(bad("MaximumRetryAttempts must be 0..=2".into())),
        }
    }
    if let Some(n) = int("MaximumEventAgeInSeconds") {
        match n {
            Ok(n @ 60..=21_600) => config.maximum_event_age = Duration::from_secs(n as u64),
            _ => return Err(bad("MaximumEventAgeInSeconds must be 60..=21600".into())),
        }
    }
    config.on_failure = field(c, "DestinationConfig")
        .and_then(|d| field(d, "OnFailure"))
        .and_then(|o| field(o, "Destination"))
        .map(|d| match d {
            Value::Tagged(t) => scalar(&t.value)
                .map(|s| s.split('.').next().unwrap_or_default().to_owned())
                .unwrap_or_default(),
            other => scalar(other).unwrap_or_default(),
        });
    Ok(config)
}
