//! A `Type: S3` event: the bucket's notification rule for a function, and how S3 matches it.

use serde_norway::Value;

use crate::yaml::{field, invalid, only, scalar};
use crate::TemplateError;

/// Properties of a `Type: S3` event the engine honours.
pub(crate) const BUCKET_PROPERTIES: &[&str] = &["Bucket", "Events", "Filter"];

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

/// One `Type: S3` event's properties.
pub(crate) fn notification(
    name: &str,
    at: &str,
    p: &Value,
) -> Result<NotificationRule, TemplateError> {
    let events = match field(p, "Events") {
        Some(Value::Sequence(list)) => list.iter().filter_map(scalar).collect(),
        Some(one) => scalar(one).into_iter().collect(),
        None => return Err(invalid(at, "an S3 event needs Events".into())),
    };
    let (mut prefix, mut suffix) = (String::new(), String::new());
    if let Some(filter) = field(p, "Filter") {
        only(filter, &["S3Key"], at)?;
    }
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
            other => return Err(invalid(at, format!("unknown S3Key rule {other:?}"))),
        }
    }
    Ok(NotificationRule {
        name: name.to_owned(),
        events,
        prefix,
        suffix,
    })
}
