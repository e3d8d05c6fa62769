//! Match conditions: the items of a pattern's leaf arrays, parsed and tested against one value.
//!
//! Parsing follows `JsonRuleCompiler` in aws/event-ruler, the library EventBridge's pattern
//! language comes from; each refusal names the rule it applies.

use serde_json::{Number, Value};

use crate::error::{invalid, not_in_lambda, FilterError, LAMBDA_OPERATORS};
use crate::json::Json;

#[derive(Debug, Clone)]
pub(crate) enum Condition {
    /// A JSON scalar. Strings, booleans and `null` compare as they are; numbers compare by value
    /// when both have an exact double, else by their parsed form (see [`exact_f64`]).
    Equals(Value),
    Prefix(String),
    Suffix(String),
    /// Stored lowercased, as are the other `IgnoreCase` conditions.
    PrefixIgnoreCase(String),
    SuffixIgnoreCase(String),
    EqualsIgnoreCase(String),
    AnythingBut(Exclusion),
    /// All bounds must hold.
    Numeric(Vec<(Comparison, f64)>),
    /// Tested on the field as a whole, not on one value (see `matcher`).
    Exists(bool),
}

/// What `anything-but` excludes. Everything else present at the field matches: other strings,
/// but also numbers, booleans and `null`, which no string exclusion can name.
#[derive(Debug, Clone)]
pub(crate) enum Exclusion {
    Strings(Vec<String>),
    Numbers(Vec<f64>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    /// Stored lowercased.
    IgnoreCase(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Comparison {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

const NUMERIC_USAGE: &str = "`numeric` expects [op, number] with op one of =, <, <=, >, >=, \
                             or [> or >=, lower, < or <=, upper] with lower < upper";

/// Parses a leaf array: its conditions are ORed.
pub(crate) fn parse_conditions(items: &[Json], path: &str) -> Result<Vec<Condition>, FilterError> {
    if items.is_empty() {
        return Err(invalid(path, "empty array: it would never match"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_condition(item, &format!("{path}[{i}]")))
        .collect()
}

fn parse_condition(item: &Json, path: &str) -> Result<Condition, FilterError> {
    match item {
        Json::Scalar(value) => Ok(Condition::Equals(value.clone())),
        Json::Array(_) => Err(invalid(path, "nested arrays are not allowed")),
        Json::Object(entries) => parse_operator(entries, path),
    }
}

fn parse_operator(entries: &[(String, Json)], path: &str) -> Result<Condition, FilterError> {
    let [(name, arg)] = entries else {
        return Err(invalid(
            path,
            format!(
                "an operator object must have exactly one key, got {}",
                entries.len()
            ),
        ));
    };
    match name.as_str() {
        "prefix" => parse_affix(arg, path, "prefix").map(|affix| match affix {
            Affix::Exact(s) => Condition::Prefix(s),
            Affix::IgnoreCase(s) => Condition::PrefixIgnoreCase(s),
        }),
        "suffix" => parse_affix(arg, path, "suffix").map(|affix| match affix {
            Affix::Exact(s) => Condition::Suffix(s),
            Affix::IgnoreCase(s) => Condition::SuffixIgnoreCase(s),
        }),
        "equals-ignore-case" => string_arg(arg, path, "equals-ignore-case")
            .map(|s| Condition::EqualsIgnoreCase(s.to_lowercase())),
        "exists" => match arg {
            Json::Scalar(Value::Bool(wanted)) => Ok(Condition::Exists(*wanted)),
            _ => Err(invalid(path, "`exists` expects true or false")),
        },
        "numeric" => parse_numeric(arg, path).map(Condition::Numeric),
        "anything-but" => parse_anything_but(arg, path).map(Condition::AnythingBut),
        "wildcard" => Err(not_in_lambda(path, "wildcard")),
        "cidr" => Err(not_in_lambda(path, "cidr")),
        other => Err(invalid(
            path,
            format!("unknown operator `{other}` (Lambda supports {LAMBDA_OPERATORS})"),
        )),
    }
}

fn string_arg(arg: &Json, path: &str, operator: &str) -> Result<String, FilterError> {
    arg.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(path, format!("`{operator}` expects a string")))
}

enum Affix {
    Exact(String),
    /// Lowercased.
    IgnoreCase(String),
}

/// `"x"` or `{"equals-ignore-case": "x"}`: a list is refused, as AWS refuses it.
fn parse_affix(arg: &Json, path: &str, operator: &str) -> Result<Affix, FilterError> {
    let usage = || {
        invalid(
            path,
            format!("`{operator}` expects a string or {{\"equals-ignore-case\": string}}"),
        )
    };
    match arg {
        Json::Scalar(Value::String(s)) => Ok(Affix::Exact(s.clone())),
        Json::Object(entries) => match entries.as_slice() {
            [(name, inner)] if name == "equals-ignore-case" => inner
                .as_str()
                .map(|s| Affix::IgnoreCase(s.to_lowercase()))
                .ok_or_else(usage),
            _ => Err(usage()),
        },
        _ => Err(usage()),
    }
}

fn parse_numeric(arg: &Json, path: &str) -> Result<Vec<(Comparison, f64)>, FilterError> {
    let usage = || invalid(path, NUMERIC_USAGE);
    let Json::Array(items) = arg else {
        return Err(usage());
    };
    let comparison = |op: &Json| match op.as_str() {
        Some("=") => Ok(Comparison::Eq),
        Some("<") => Ok(Comparison::Lt),
        Some("<=") => Ok(Comparison::Le),
        Some(">") => Ok(Comparison::Gt),
        Some(">=") => Ok(Comparison::Ge),
        _ => Err(invalid(
            path,
            format!("bad numeric operator {op:?}; {NUMERIC_USAGE}"),
        )),
    };
    let bound = |n: &Json| {
        n.as_number().and_then(exact_f64).ok_or_else(|| {
            invalid(
                path,
                format!(
                    "a numeric bound must be a number with an exact double value, got {}",
                    n.type_name()
                ),
            )
        })
    };
    match items.as_slice() {
        [op, n] => Ok(vec![(comparison(op)?, bound(n)?)]),
        [low_op, low, high_op, high] => {
            let low = (comparison(low_op)?, bound(low)?);
            let high = (comparison(high_op)?, bound(high)?);
            let lower_first = matches!(low.0, Comparison::Gt | Comparison::Ge)
                && matches!(high.0, Comparison::Lt | Comparison::Le);
            // AWS wants the lower bound first and an interval that is not empty or a point.
            if !lower_first || low.1 >= high.1 {
                return Err(usage());
            }
            Ok(vec![low, high])
        }
        _ => Err(usage()),
    }
}

fn parse_anything_but(arg: &Json, path: &str) -> Result<Exclusion, FilterError> {
    const USAGE: &str = "`anything-but` expects a string, a number, a non-empty list of only \
                         strings or only numbers, or an object with one of prefix, suffix, \
                         equals-ignore-case";
    match arg {
        Json::Scalar(Value::String(s)) => Ok(Exclusion::Strings(vec![s.clone()])),
        Json::Scalar(Value::Number(n)) => Ok(Exclusion::Numbers(vec![exact_number(n, path)?])),
        Json::Array(items) if !items.is_empty() => {
            if let Some(strings) = items.iter().map(Json::as_str).collect::<Option<Vec<_>>>() {
                Ok(Exclusion::Strings(
                    strings.into_iter().map(str::to_owned).collect(),
                ))
            } else if let Some(numbers) = items
                .iter()
                .map(Json::as_number)
                .collect::<Option<Vec<_>>>()
            {
                let numbers = numbers.into_iter().map(|n| exact_number(n, path));
                Ok(Exclusion::Numbers(numbers.collect::<Result<_, _>>()?))
            } else {
                Err(invalid(path, USAGE))
            }
        }
        Json::Object(entries) => match entries.as_slice() {
            [(name, inner)] => parse_anything_but_operator(name, inner, path),
            _ => Err(invalid(path, USAGE)),
        },
        _ => Err(invalid(path, USAGE)),
    }
}

fn parse_anything_but_operator(
    name: &str,
    inner: &Json,
    path: &str,
) -> Result<Exclusion, FilterError> {
    if name == "wildcard" {
        return Err(not_in_lambda(path, "anything-but/wildcard"));
    }
    let make: fn(Vec<String>) -> Exclusion = match name {
        "prefix" => Exclusion::Prefixes,
        "suffix" => Exclusion::Suffixes,
        "equals-ignore-case" => {
            |strings| Exclusion::IgnoreCase(strings.iter().map(|s| s.to_lowercase()).collect())
        }
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
            format!("`anything-but`/`{name}` expects a string or a non-empty list of strings"),
        )
    })?;
    // An empty prefix or suffix would exclude every string; AWS refuses it ("Null prefix/suffix
    // not allowed" in event-ruler's JsonRuleCompiler).
    if name != "equals-ignore-case" && strings.iter().any(String::is_empty) {
        return Err(invalid(
            path,
            format!("`anything-but`/`{name}` does not accept an empty string"),
        ));
    }
    Ok(make(strings))
}

fn string_or_strings(value: &Json) -> Option<Vec<String>> {
    match value {
        Json::Scalar(Value::String(s)) => Some(vec![s.clone()]),
        Json::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

fn exact_number(n: &Number, path: &str) -> Result<f64, FilterError> {
    exact_f64(n).ok_or_else(|| {
        invalid(
            path,
            format!("{n} has no exact double value, so AWS cannot compare it as a number"),
        )
    })
}

/// The number's value when a double holds it exactly, which is when AWS compares it as a
/// number (event-ruler's `ComparableNumber`); `None` for integers past 2^53 that a double
/// would round. Numbers with a fraction or exponent are read as doubles by serde_json, so they
/// are taken as exact.
pub(crate) fn exact_f64(n: &Number) -> Option<f64> {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if let Some(u) = n.as_u64() {
        let f = u as f64;
        return (f < TWO_POW_64 && f as u64 == u).then_some(f);
    }
    if let Some(i) = n.as_i64() {
        let f = i as f64;
        return (f < TWO_POW_63 && f as i64 == i).then_some(f);
    }
    n.as_f64()
}

fn numbers_equal(a: &Number, b: &Number) -> bool {
    a == b || matches!((exact_f64(a), exact_f64(b)), (Some(x), Some(y)) if x == y)
}

impl Condition {
    /// Whether one value present at the field satisfies this condition. `Exists` is decided
    /// per field by the caller, so it never matches here.
    pub(crate) fn matches_value(&self, value: &Value) -> bool {
        let text = value.as_str();
        match self {
            Condition::Equals(Value::Number(expected)) => {
                matches!(value, Value::Number(n) if numbers_equal(expected, n))
            }
            Condition::Equals(expected) => expected == value,
            Condition::Prefix(p) => text.is_some_and(|s| s.starts_with(p.as_str())),
            Condition::Suffix(p) => text.is_some_and(|s| s.ends_with(p.as_str())),
            Condition::PrefixIgnoreCase(p) => {
                text.is_some_and(|s| s.to_lowercase().starts_with(p.as_str()))
            }
            Condition::SuffixIgnoreCase(p) => {
                text.is_some_and(|s| s.to_lowercase().ends_with(p.as_str()))
            }
            Condition::EqualsIgnoreCase(lower) => text.is_some_and(|s| s.to_lowercase() == *lower),
            Condition::AnythingBut(exclusion) => !exclusion.excludes(value),
            // Strings never match, so DynamoDB's {"N": "42"} is out of reach of `numeric`.
            Condition::Numeric(bounds) => {
                number_value(value).is_some_and(|x| bounds.iter().all(|&(op, n)| op.holds(x, n)))
            }
            Condition::Exists(_) => false,
        }
    }
}

fn number_value(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => exact_f64(n),
        _ => None,
    }
}

impl Exclusion {
    fn excludes(&self, value: &Value) -> bool {
        let text = value.as_str();
        let any_string = |items: &[String], test: &dyn Fn(&str, &str) -> bool| {
            text.is_some_and(|s| items.iter().any(|item| test(s, item)))
        };
        match self {
            Exclusion::Strings(items) => any_string(items, &|s, item| s == item),
            Exclusion::Numbers(items) => number_value(value).is_some_and(|x| items.contains(&x)),
            Exclusion::Prefixes(items) => any_string(items, &|s, item| s.starts_with(item)),
            Exclusion::Suffixes(items) => any_string(items, &|s, item| s.ends_with(item)),
            Exclusion::IgnoreCase(items) => text.is_some_and(|s| items.contains(&s.to_lowercase())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_past_two_to_the_53_have_no_exact_double() {
        assert_eq!(
            exact_f64(&Number::from(9_007_199_254_740_992_u64)),
            Some(9_007_199_254_740_992.0)
        );
        assert_eq!(exact_f64(&Number::from(9_007_199_254_740_993_u64)), None);
        assert_eq!(exact_f64(&Number::from(u64::MAX)), None);
        assert_eq!(
            exact_f64(&Number::from(i64::MIN)),
            Some(-9_223_372_036_854_775_808.0)
        );
        assert_eq!(exact_f64(&Number::from(-9_007_199_254_740_993_i64)), None);
    }

    #[test]
    fn numbers_without_an_exact_double_compare_by_their_parsed_form() {
        let big: Number = 9_007_199_254_740_993_u64.into();
        let rounded = Number::from_f64(9_007_199_254_740_992.0).unwrap();
        assert!(numbers_equal(&big, &big));
        assert!(!numbers_equal(&big, &rounded));
        assert!(numbers_equal(
            &300.into(),
            &Number::from_f64(300.0).unwrap()
        ));
    }
}
