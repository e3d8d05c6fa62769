//! Lambda event filtering: the `FilterCriteria` patterns of event source mappings.
//!
//! Lambda uses EventBridge's pattern syntax. A pattern is a JSON object shaped like the
//! event; its leaves are arrays of match conditions:
//!
//! * filters (patterns) of one mapping are ORed; an empty list matches every record;
//! * fields within one pattern are ANDed, and every named field must be present in the
//!   event (except under `{"exists": false}`);
//! * the conditions in one leaf array are ORed;
//! * an array in the event matches when any of its elements matches;
//! * `"$or": [pattern, ...]` ORs whole sub-patterns at the level where it appears.
//!
//! Conditions: exact string / number / boolean / `null` (the empty string is just a
//! string), `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (string, number,
//! list of strings or of numbers, or `{"prefix" | "suffix" | "equals-ignore-case": ..}`),
//! `numeric` (`=`, `<`, `<=`, `>`, `>=`, or a lower and an upper bound), and `exists`.
//!
//! Like EventBridge, only leaves count: objects are not values, so `exists` is false for
//! a field that holds an object, and `numeric` only matches JSON numbers (DynamoDB's
//! `{"N": "42"}` is a string and never matches `numeric`).
//!
//! The crate stands alone: give it the `Pattern` strings of a mapping's `FilterCriteria` and the
//! record as Lambda would deliver it.
//!
//! ```
//! use lambda_filter::FilterCriteria;
//!
//! let process = FilterCriteria::parse(&[
//!     r#"{"dynamodb": {"NewImage": {"status": {"S": ["uploaded"]}}}}"#,
//! ])
//! .unwrap();
//! let insert = serde_json::json!({
//!     "eventName": "INSERT",
//!     "dynamodb": {"NewImage": {"status": {"S": "uploaded"}}}
//! });
//! let own_write = serde_json::json!({
//!     "eventName": "MODIFY",
//!     "dynamodb": {"OldImage": {"status": {"S": "uploaded"}}, "NewImage": {"status": {"S": "processed"}}}
//! });
//! assert!(process.matches(&insert));
//! assert!(!process.matches(&own_write), "a function's own write does not trigger it");
//! ```
//!
//! Its conformance tests (`tests/conformance.rs`) hold it to the examples of AWS's filtering
//! pages, one test each.

use serde_json::{Map, Value};

/// Lambda's limit on the length of one filter pattern, in characters.
pub const MAX_PATTERN_CHARS: usize = 4096;

const OPERATORS: &str = "prefix, suffix, equals-ignore-case, anything-but, numeric, exists";

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("filter pattern is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("filter pattern is {0} characters long; Lambda allows at most {MAX_PATTERN_CHARS}")]
    TooLong(usize),
    #[error("filter pattern must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("invalid filter pattern at `{path}`: {reason}")]
    Invalid { path: String, reason: String },
    #[error("Filters[{index}]: {error}")]
    InFilter {
        index: usize,
        error: Box<FilterError>,
    },
}

/// One filter pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    root: ObjectPattern,
}

/// The filter patterns of one event source mapping.
#[derive(Debug, Clone, Default)]
pub struct FilterCriteria {
    patterns: Vec<Pattern>,
}

/// One level of a pattern: every field must match, and one `$or` branch if there are any.
#[derive(Debug, Clone)]
struct ObjectPattern {
    fields: Vec<(String, FieldPattern)>,
    any_of: Vec<ObjectPattern>,
}

#[derive(Debug, Clone)]
enum FieldPattern {
    /// Conditions on the leaf values of the field, ORed.
    Leaf(Vec<Condition>),
    Nested(ObjectPattern),
}

#[derive(Debug, Clone)]
enum Condition {
    /// A JSON scalar, compared with `==` (so `300` and `300.0` differ, as Lambda documents).
    Equals(Value),
    Prefix(String),
    Suffix(String),
    /// Stored lowercased.
    EqualsIgnoreCase(String),
    AnythingBut(Exclusion),
    /// All bounds must hold.
    Numeric(Vec<(Comparison, f64)>),
    Exists(bool),
}

#[derive(Debug, Clone)]
enum Exclusion {
    /// All strings or all numbers.
    Values(Vec<Value>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    /// Stored lowercased.
    IgnoreCase(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Pattern {
    pub fn parse(json: &str) -> Result<Pattern, FilterError> {
        let chars = json.chars().count();
        if chars > MAX_PATTERN_CHARS {
            return Err(FilterError::TooLong(chars));
        }
        // serde_json keeps the last of duplicate keys, which is what Lambda documents.
        let value: Value = serde_json::from_str(json).map_err(FilterError::NotJson)?;
        match &value {
            Value::Object(map) => Ok(Pattern {
                root: parse_object(map, "")?,
            }),
            other => Err(FilterError::NotAnObject(type_name(other))),
        }
    }

    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches_in(Some(event))
    }
}

impl FilterCriteria {
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<FilterCriteria, FilterError> {
        let patterns = patterns
            .iter()
            .enumerate()
            .map(|(index, p)| {
                Pattern::parse(p.as_ref()).map_err(|error| FilterError::InFilter {
                    index,
                    error: Box::new(error),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(FilterCriteria { patterns })
    }

    pub fn matches(&self, event: &Value) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(event))
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

// ---------------------------------------------------------------------------------------
// Parsing

fn invalid(path: &str, reason: impl Into<String>) -> FilterError {
    FilterError::Invalid {
        path: if path.is_empty() { "<root>" } else { path }.to_owned(),
        reason: reason.into(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_object(map: &Map<String, Value>, path: &str) -> Result<ObjectPattern, FilterError> {
    // An empty object names no field, so it would match anything: almost surely a mistake.
    if map.is_empty() {
        return Err(invalid(
            path,
            "empty object: a pattern must name at least one field",
        ));
    }
    let mut fields = Vec::with_capacity(map.len());
    let mut any_of = Vec::new();
    for (key, value) in map {
        let here = join(path, key);
        if key == "$or" {
            any_of = parse_or(value, &here)?;
            continue;
        }
        let field = match value {
            Value::Array(items) => FieldPattern::Leaf(parse_conditions(items, &here)?),
            Value::Object(inner) => FieldPattern::Nested(parse_object(inner, &here)?),
            other => {
                return Err(invalid(
                    &here,
                    format!(
                        "expected an array of match conditions or a nested object, got {}",
                        type_name(other)
                    ),
                ));
            }
        };
        fields.push((key.clone(), field));
    }
    Ok(ObjectPattern { fields, any_of })
}

fn parse_or(value: &Value, path: &str) -> Result<Vec<ObjectPattern>, FilterError> {
    let Value::Array(branches) = value else {
        return Err(invalid(path, "`$or` must be an array of pattern objects"));
    };
    if branches.is_empty() {
        return Err(invalid(path, "`$or` must not be empty"));
    }
    branches
        .iter()
        .enumerate()
        .map(|(i, branch)| {
            let here = format!("{path}[{i}]");
            match branch {
                Value::Object(map) => parse_object(map, &here),
                other => Err(invalid(
                    &here,
                    format!("`$or` branches must be objects, got {}", type_name(other)),
                )),
            }
        })
        .collect()
}

fn parse_conditions(items: &[Value], path: &str) -> Result<Vec<Condition>, FilterError> {
    if items.is_empty() {
        return Err(invalid(path, "empty array: it would never match"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let here = format!("{path}[{i}]");
            match item {
                Value::Array(_) => Err(invalid(&here, "nested arrays are not allowed")),
                Value::Object(op) => parse_operator(op, &here),
                scalar => Ok(Condition::Equals(scalar.clone())),
            }
        })
        .collect()
}

fn parse_operator(op: &Map<String, Value>, path: &str) -> Result<Condition, FilterError> {
    let mut entries = op.iter();
    let (Some((name, arg)), None) = (entries.next(), entries.next()) else {
        return Err(invalid(
            path,
            format!(
                "an operator object must have exactly one key, got {}",
                op.len()
            ),
        ));
    };
    let string_arg = || {
        arg.as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid(path, format!("`{name}` expects a string")))
    };
    match name.as_str() {
        "prefix" => Ok(Condition::Prefix(string_arg()?)),
        "suffix" => Ok(Condition::Suffix(string_arg()?)),
        "equals-ignore-case" => Ok(Condition::EqualsIgnoreCase(string_arg()?.to_lowercase())),
        "exists" => match arg {
            Value::Bool(b) => Ok(Condition::Exists(*b)),
            _ => Err(invalid(path, "`exists` expects true or false")),
        },
        "numeric" => parse_numeric(arg, path).map(Condition::Numeric),
        "anything-but" => parse_anything_but(arg, path).map(Condition::AnythingBut),
        other => Err(invalid(
            path,
            format!("unknown operator `{other}` (supported: {OPERATORS})"),
        )),
    }
}

fn parse_numeric(arg: &Value, path: &str) -> Result<Vec<(Comparison, f64)>, FilterError> {
    const USAGE: &str = "`numeric` expects [op, number] or [lower-op, number, upper-op, number], \
                         with op one of =, <, <=, >, >=";
    let Some(items) = arg.as_array().filter(|a| a.len() == 2 || a.len() == 4) else {
        return Err(invalid(path, USAGE));
    };
    let bounds = items
        .chunks(2)
        .map(|pair| {
            let op = match pair[0].as_str() {
                Some("=") => Comparison::Eq,
                Some("<") => Comparison::Lt,
                Some("<=") => Comparison::Le,
                Some(">") => Comparison::Gt,
                Some(">=") => Comparison::Ge,
                _ => {
                    return Err(invalid(
                        path,
                        format!("bad numeric operator {}; {USAGE}", pair[0]),
                    ));
                }
            };
            // Numbers only: a quoted "5" is a mistake that would silently never match.
            let n = pair[1].as_f64().ok_or_else(|| {
                invalid(
                    path,
                    format!("numeric bound must be a number, got {}", pair[1]),
                )
            })?;
            Ok((op, n))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let [(a, _), (b, _)] = bounds.as_slice() {
        let is_lower = |c: &Comparison| matches!(c, Comparison::Gt | Comparison::Ge);
        let is_upper = |c: &Comparison| matches!(c, Comparison::Lt | Comparison::Le);
        if !(is_lower(a) && is_upper(b) || is_upper(a) && is_lower(b)) {
            return Err(invalid(
                path,
                "a numeric range needs one lower bound (> or >=) and one upper bound (< or <=)",
            ));
        }
    }
    Ok(bounds)
}

fn parse_anything_but(arg: &Value, path: &str) -> Result<Exclusion, FilterError> {
    match arg {
        Value::String(_) | Value::Number(_) => Ok(Exclusion::Values(vec![arg.clone()])),
        Value::Array(items) => {
            let all_strings = items.iter().all(Value::is_string);
            let all_numbers = items.iter().all(Value::is_number);
            if items.is_empty() || !(all_strings || all_numbers) {
                return Err(invalid(
                    path,
                    "`anything-but` list must be non-empty and all strings or all numbers",
                ));
            }
            Ok(Exclusion::Values(items.clone()))
        }
        Value::Object(op) if op.len() == 1 => {
            let (name, inner) = op.iter().next().expect("one entry");
            let make: fn(Vec<String>) -> Exclusion = match name.as_str() {
                "prefix" => Exclusion::Prefixes,
                "suffix" => Exclusion::Suffixes,
                "equals-ignore-case" => |strings| {
                    Exclusion::IgnoreCase(strings.iter().map(|s| s.to_lowercase()).collect())
                },
                other => {
                    return Err(invalid(
                        path,
                        format!(
                            "unsupported operator `{other}` inside `anything-but` \
                             (supported: prefix, suffix, equals-ignore-case)"
                        ),
                    ));
                }
            };
            let strings = string_or_strings(inner).ok_or_else(|| {
                invalid(
                    path,
                    format!(
                        "`anything-but`/`{name}` expects a string or a non-empty list of strings"
                    ),
                )
            })?;
            Ok(make(strings))
        }
        _ => Err(invalid(
            path,
            "`anything-but` expects a string, a number, a list of strings or numbers, \
             or an object with one of prefix, suffix, equals-ignore-case",
        )),
    }
}

fn string_or_strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Matching

/// Pushes the non-array values of `value`, descending into arrays (nested ones too),
/// because EventBridge-style matching treats an array as "any of its elements".
fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        other => out.push(other),
    }
}

impl ObjectPattern {
    /// `event` is the value at this level, `None` when the event has no such field.
    fn matches_in(&self, event: Option<&Value>) -> bool {
        let mut candidates = Vec::new();
        if let Some(value) = event {
            flatten(value, &mut candidates);
        }
        if candidates.is_empty() {
            // Nothing here: only `exists: false` conditions below can still match.
            return self.matches_one(None);
        }
        // All fields must match within the same array element, not across elements.
        candidates
            .into_iter()
            .any(|candidate| self.matches_one(candidate.as_object()))
    }

    fn matches_one(&self, object: Option<&Map<String, Value>>) -> bool {
        let fields_match = self.fields.iter().all(|(key, field)| {
            let value = object.and_then(|o| o.get(key));
            match field {
                FieldPattern::Leaf(conditions) => leaf_matches(conditions, value),
                FieldPattern::Nested(inner) => inner.matches_in(value),
            }
        });
        fields_match
            && (self.any_of.is_empty() || self.any_of.iter().any(|b| b.matches_one(object)))
    }
}

fn leaf_matches(conditions: &[Condition], value: Option<&Value>) -> bool {
    let mut leaves = Vec::new();
    if let Some(value) = value {
        flatten(value, &mut leaves);
    }
    // Objects are inner nodes, not values: Lambda's `exists` only sees leaves.
    leaves.retain(|v| !v.is_object());
    conditions.iter().any(|condition| match condition {
        Condition::Exists(wanted) => *wanted != leaves.is_empty(),
        other => leaves.iter().any(|leaf| other.matches_value(leaf)),
    })
}

impl Condition {
    fn matches_value(&self, value: &Value) -> bool {
        match self {
            Condition::Equals(expected) => expected == value,
            Condition::Prefix(p) => value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            Condition::Suffix(p) => value.as_str().is_some_and(|s| s.ends_with(p.as_str())),
            Condition::EqualsIgnoreCase(lower) => {
                value.as_str().is_some_and(|s| s.to_lowercase() == *lower)
            }
            Condition::AnythingBut(exclusion) => exclusion.allows(value),
            // `as_f64` is None for strings, so DynamoDB's {"N": "42"} never matches.
            Condition::Numeric(bounds) => value
                .as_f64()
                .is_some_and(|x| bounds.iter().all(|&(op, n)| op.holds(x, n))),
            Condition::Exists(_) => false, // handled per field in `leaf_matches`
        }
    }
}

impl Exclusion {
    fn allows(&self, value: &Value) -> bool {
        let none_of = |items: &[String], test: &dyn Fn(&str, &str) -> bool| {
            value
                .as_str()
                .is_some_and(|s| !items.iter().any(|item| test(s, item)))
        };
        match self {
            Exclusion::Values(excluded) => !excluded.contains(value),
            Exclusion::Prefixes(p) => none_of(p, &|s, p| s.starts_with(p)),
            Exclusion::Suffixes(p) => none_of(p, &|s, p| s.ends_with(p)),
            Exclusion::IgnoreCase(p) => none_of(p, &|s, p| s.to_lowercase() == p),
        }
    }
}

impl Comparison {
    fn holds(self, x: f64, n: f64) -> bool {
        match self {
            Comparison::Eq => x == n,
            Comparison::Lt => x < n,
            Comparison::Le => x <= n,
            Comparison::Gt => x > n,
            Comparison::Ge => x >= n,
        }
    }
}
