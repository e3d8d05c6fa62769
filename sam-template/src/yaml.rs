//! Reading the parsed YAML: fields of mappings, scalars, whole numbers, with errors that say where.

use serde_norway::Value;

use crate::TemplateError;

pub fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping().and_then(|m| m.get(key))
}

/// A string, number or boolean, as text.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The keys of a mapping, as text.
pub fn keys(v: &Value) -> Vec<String> {
    v.as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| scalar(k))
        .collect()
}

/// `key` of `v` as a whole number, if present.
pub fn int(v: &Value, key: &str, at: &str) -> Result<Option<i64>, TemplateError> {
    match field(v, key) {
        None => Ok(None),
        Some(n) => scalar(n)
            .and_then(|s| s.parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| invalid(at, format!("{key} must be a whole number"))),
    }
}

/// `key` of `v` as a boolean, if present.
pub fn boolean(v: &Value, key: &str, at: &str) -> Result<Option<bool>, TemplateError> {
    match field(v, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(at, format!("{key} must be true or false"))),
    }
}

pub fn invalid(at: &str, what: String) -> TemplateError {
    TemplateError::Invalid {
        at: at.to_owned(),
        what,
    }
}

/// Refuses a setting the engine does not emulate, naming it.
pub fn not_emulated(at: &str, setting: &str, why: &str) -> TemplateError {
    TemplateError::NotEmulated {
        at: at.to_owned(),
        setting: setting.to_owned(),
        why: why.to_owned(),
    }
}

/// Refuses every key of `props` that `known` does not list.
pub fn only(props: &Value, known: &[&str], at: &str) -> Result<(), TemplateError> {
    match keys(props)
        .into_iter()
        .find(|k| !known.contains(&k.as_str()))
    {
        None => Ok(()),
        Some(unknown) => Err(not_emulated(
            at,
            &unknown,
            &format!(
                "the local engine does not emulate it (it knows {})",
                known.join(", ")
            ),
        )),
    }
}
