//! Lambda event filtering: the `FilterCriteria` patterns of event source mappings, parsed and
//! matched as AWS does.
//!
//! Lambda uses EventBridge's pattern language ("Filter rule syntax" on Lambda's
//! [event filtering page][lambda]), whose engine AWS publishes as [aws/event-ruler][ruler]. This
//! crate follows what AWS *does*, as recorded against the service, where that differs from what
//! its pages say (see [Where the documentation and AWS differ](#where-the-documentation-and-aws-differ)).
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
//! # Structure
//!
//! * The filters (patterns) of one mapping are ORed; an empty list matches every record.
//! * A pattern is a JSON object shaped like the record. Its fields are ANDed, and every field
//!   it names must be present in the record (except under `{"exists": false}`).
//! * A field's value in the pattern is an array of conditions, ORed.
//! * An array in the record matches when any of its elements matches; fields below an array
//!   must all match within one element of it.
//! * `"$or": [pattern, pattern, ...]` (two or more) ORs whole sub-patterns where it appears;
//!   one pattern may expand into at most [`MAX_OR_COMBINATIONS`] combinations.
//! * A pattern is at most [`MAX_PATTERN_CHARS`] characters.
//!
//! # Conditions
//!
//! | condition | matches |
//! | --- | --- |
//! | `"text"`, `true`, `null` | that value exactly (`""` is just a string, `null` is not "missing") |
//! | a number | a number equal to it: `[300]` matches `300.0` and `3.0e2` |
//! | `{"prefix": "x"}`, `{"suffix": "x"}` | strings that start / end with `x` (`""` matches every string) |
//! | `{"prefix": {"equals-ignore-case": "x"}}`, same for `suffix` | the same, ignoring case |
//! | `{"equals-ignore-case": "x"}` | strings equal to `x` ignoring case |
//! | `{"anything-but": ...}` | every value present except the ones named: a string, a number, a list of only strings or only numbers, or `{"prefix" \| "suffix" \| "equals-ignore-case": string or list}` |
//! | `{"numeric": ["=", 5]}`, `[">", 0, "<=", 5]` | JSON numbers in range; one bound, or a lower then an upper bound with lower < upper |
//! | `{"exists": true \| false}` | whether the field has any leaf value |
//!
//! Only leaves are values: an object is an inner node, so `exists` is false for a field that
//! holds an object. `numeric` sees JSON numbers only, so DynamoDB's `{"N": "42"}`, a string,
//! never matches it.
//!
//! # AWS behaviours this crate follows
//!
//! Each has cases in `tests/cases/`, with the source that records it.
//!
//! * **`anything-but` matches `null`**, whatever it excludes (plain values, lists,
//!   `equals-ignore-case`): `null` is a value that no exclusion names. Likewise numbers and
//!   booleans pass an `anything-but` of strings.
//! * **`anything-but` with `prefix`/`suffix` means "anything but a string with that
//!   prefix/suffix"**: numbers and `null` match it. A missing field still does not.
//! * **An empty `prefix`/`suffix` inside `anything-but` is refused** (it would exclude every
//!   string); a plain `{"prefix": ""}` is accepted and matches every string.
//! * **Dotted names are paths, both ways**: the pattern key `"a.b"` names the record's
//!   `{"a": {"b": ...}}`, and the record key `"a.b"` is named by the pattern `{"a": {"b": ...}}`.
//!   Objects that meet at one path merge.
//! * **Numbers compare as numbers** when both sides are JSON numbers with an exact double value:
//!   `[300]` matches `300.0`. An integer a double cannot hold exactly (past 2^53, such as
//!   9007199254740993) equals only the same integer, and is refused as a `numeric` bound or an
//!   `anything-but` number, as AWS refuses it.
//! * **A repeated key is accepted, and the last one wins**, per field path: `{"a": [1], "a": [2]}`
//!   is `{"a": [2]}`, while `{"x": {"a": [1]}, "x": {"b": [2]}}` keeps both `x.a` and `x.b`
//!   (AWS reads the pattern as a stream of paths). A field repeated inside a `$or` branch
//!   replaces the one outside for that branch.
//!
//! # Lambda-only restrictions
//!
//! Lambda's page lists the operators it supports: equals, equals-ignore-case, prefix, suffix,
//! anything-but, numeric, exists and `$or`, and says it uses EventBridge's syntax for them. The
//! forms EventBridge gives those operators are accepted. Operators the page does not list at
//! all, `wildcard` and `cidr` (also inside `anything-but`), are refused with
//! [`FilterError::NotInLambda`], which names the operator and the page.
//!
//! # Where the documentation and AWS differ
//!
//! * Lambda's and EventBridge's pages say that numbers compare by their text ("300, 300.0, and
//!   3.0e2 are not considered equal"). AWS's `TestEventPattern`, recorded against the service,
//!   matches `[300]` with `300.0`, and event-ruler compiles a number in a pattern to both its
//!   text and its value. This crate compares values.
//! * The pages do not say that `anything-but` matches `null` or numbers when it excludes strings;
//!   AWS does (recorded by EventBridge rules and `TestEventPattern`).
//!
//! # Where this crate is not exact
//!
//! * Numbers with a fraction or an exponent are read as doubles, so a pattern number that AWS
//!   refuses for having no exact double (`1E-325`) is taken as its nearest double here.
//! * Under `exists: false` inside an array of objects, the field is tested within each element;
//!   AWS's answer there depends on the order its engine visits the fields in.
//! * If a record holds two arrays at one path (once through a dotted key, once nested), fields
//!   below them are taken from one array's element at a time.
//!
//! The crate stands alone: give it the `Pattern` strings of a mapping's `FilterCriteria` and the
//! record as Lambda would deliver it.
//!
//! [lambda]: https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html#filtering-syntax
//! [ruler]: https://github.com/aws/event-ruler

mod compile;
mod condition;
mod error;
mod event;
mod json;
mod matcher;

use serde_json::Value;

pub use error::{
    FilterError, LAMBDA_FILTER_SYNTAX_URL, LAMBDA_OPERATORS, MAX_OR_COMBINATIONS, MAX_PATTERN_CHARS,
};

use compile::RuleNode;
use event::{Node, Reach};
use json::Json;

/// One filter pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// One per `$or` combination; the pattern matches when any does.
    rules: Vec<RuleNode>,
    /// The part of a record the rules can name.
    reach: Reach,
}

/// The filter patterns of one event source mapping.
#[derive(Debug, Clone, Default)]
pub struct FilterCriteria {
    patterns: Vec<Pattern>,
    /// The part of a record any of the patterns can name.
    reach: Reach,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, FilterError> {
        let chars = text.chars().count();
        if chars > MAX_PATTERN_CHARS {
            return Err(FilterError::TooLong(chars));
        }
        let entries = match Json::parse(text).map_err(FilterError::NotJson)? {
            Json::Object(entries) => entries,
            other => return Err(FilterError::NotAnObject(other.type_name())),
        };
        let rules = compile::compile(&entries)?;
        let reach = compile::reach(&rules);
        Ok(Pattern { rules, reach })
    }

    pub fn matches(&self, record: &Value) -> bool {
        self.matches_view(&Node::new(record, &self.reach))
    }

    fn matches_view(&self, record: &Node<'_>) -> bool {
        self.rules.iter().any(|rule| rule.matches(&[record]))
    }
}

impl FilterCriteria {
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<FilterCriteria, FilterError> {
        let patterns: Vec<Pattern> = patterns
            .iter()
            .enumerate()
            .map(|(index, p)| {
                Pattern::parse(p.as_ref()).map_err(|error| FilterError::InFilter {
                    index,
                    error: Box::new(error),
                })
            })
            .collect::<Result<_, _>>()?;
        let reach = Reach {
            depth: patterns.iter().map(|p| p.reach.depth).max().unwrap_or(0),
            names: patterns
                .iter()
                .flat_map(|p| p.reach.names.iter().cloned())
                .collect(),
        };
        Ok(FilterCriteria { patterns, reach })
    }

    pub fn matches(&self, record: &Value) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let view = Node::new(record, &self.reach);
        self.patterns.iter().any(|p| p.matches_view(&view))
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}
