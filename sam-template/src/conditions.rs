//! The template's `Conditions`: `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`, over
//! parameters (and anything else a value may name), as `!If` and a resource's `Condition` use them.

use std::collections::BTreeMap;

use serde_norway::Value;

use crate::expr::Expr;
use crate::yaml::{field, invalid, scalar};
use crate::TemplateError;

/// One condition, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Equals(Expr, Expr),
    Not(Box<Condition>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    /// Another condition, by name.
    Named(String),
}

/// The `Conditions` section, by name.
pub(crate) fn parse_all(doc: &Value) -> Result<BTreeMap<String, Condition>, TemplateError> {
    field(doc, "Conditions")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .map(|(name, c)| {
            let name = scalar(name).unwrap_or_default();
            let at = format!("Conditions.{name}");
            Ok((name, Condition::parse(c, &at)?))
        })
        .collect()
}

impl Condition {
    fn parse(v: &Value, at: &str) -> Result<Condition, TemplateError> {
        let (function, args) = match v {
            Value::Tagged(t) => (
                t.tag.to_string().trim_start_matches('!').to_owned(),
                &t.value,
            ),
            Value::Mapping(m) if m.len() == 1 => {
                let (key, value) = m.iter().next().expect("one entry");
                let key = scalar(key).unwrap_or_default();
                (key.trim_start_matches("Fn::").to_owned(), value)
            }
            _ => {
                return Err(invalid(
                    at,
                    "a condition is Fn::Equals, Fn::Not, Fn::And, Fn::Or or Condition".into(),
                ))
            }
        };
        let list = || {
            args.as_sequence()
                .ok_or_else(|| invalid(at, format!("Fn::{function} takes a list")))
        };
        let conditions = || -> Result<Vec<Condition>, TemplateError> {
            list()?.iter().map(|c| Condition::parse(c, at)).collect()
        };
        Ok(match function.as_str() {
            "Equals" => match list()?.as_slice() {
                [a, b] => Condition::Equals(Expr::parse(a), Expr::parse(b)),
                _ => return Err(invalid(at, "Fn::Equals takes two values".into())),
            },
            "Not" => match conditions()?.as_slice() {
                [c] => Condition::Not(Box::new(c.clone())),
                _ => return Err(invalid(at, "Fn::Not takes one condition".into())),
            },
            "And" => Condition::And(conditions()?),
            "Or" => Condition::Or(conditions()?),
            "Condition" => Condition::Named(
                scalar(args).ok_or_else(|| invalid(at, "Condition takes a name".into()))?,
            ),
            other => {
                return Err(invalid(
                    at,
                    format!("{other} is not a condition function (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition)"),
                ))
            }
        })
    }
}
