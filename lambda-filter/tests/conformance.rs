//! Conformance: every case of `tests/cases/*.json` (AWS's recorded outcomes, event-ruler's tests,
//! AWS's documented examples; provenance in `tests/cases/PROVENANCE.md`), run by one test.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use lambda_filter::{FilterError, Pattern, LAMBDA_FILTER_SYNTAX_URL};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct CaseFile {
    source: Value,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Where the case comes from: a file and test, or a page and section.
    source: BTreeMap<String, String>,
    behaviour: Option<Behaviour>,
    /// A JSON object, or a string holding the pattern's text (for text that is not a JSON
    /// object, or that repeats a key).
    pattern: Value,
    event: Value,
    expect: Expect,
    /// For `not-in-lambda`: the operator the error must name.
    operator: Option<String>,
    /// For `not-in-lambda`: EventBridge's outcome, kept for the record.
    #[allow(dead_code)]
    eventbridge: Option<Expect>,
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
enum Expect {
    Match,
    NoMatch,
    /// The pattern is accepted (the case has no event).
    Valid,
    /// AWS refuses the pattern.
    Invalid,
    /// EventBridge has the operator; Lambda's filter syntax does not list it.
    NotInLambda,
}

/// The behaviours of issue 27, each pinned by cases from AWS's material.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
enum Behaviour {
    AnythingButNull,
    AnythingButNonString,
    AnythingButEmptyAffix,
    DottedKeys,
    Numbers,
    DuplicateKeys,
    LambdaOnly,
}

fn case_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn pattern_text(pattern: &Value) -> String {
    match pattern {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// What this crate does with the case, or why it disagrees.
fn check(case: &Case) -> Result<(), String> {
    let parsed = Pattern::parse(&pattern_text(&case.pattern));
    match (case.expect, parsed) {
        (Expect::Match | Expect::NoMatch, Ok(pattern)) => {
            let matched = pattern.matches(&case.event);
            if matched == (case.expect == Expect::Match) {
                Ok(())
            } else {
                Err(format!("expected {:?}, matched = {matched}", case.expect))
            }
        }
        (Expect::Valid, Ok(_)) => Ok(()),
        (Expect::Invalid, Err(_)) => Ok(()),
        (Expect::NotInLambda, Err(FilterError::NotInLambda { operator, .. })) => {
            match case.operator.as_deref() {
                Some(expected) if expected == operator => Ok(()),
                other => Err(format!("refused `{operator}`, the case names {other:?}")),
            }
        }
        (expect, Ok(_)) => Err(format!("expected {expect:?}, the pattern was accepted")),
        (expect, Err(e)) => Err(format!("expected {expect:?}, refused: {e}")),
    }
}

#[test]
fn every_case_from_aws_material() {
    let mut failures = Vec::new();
    let mut per_file = Vec::new();
    let mut per_behaviour: BTreeMap<Behaviour, usize> = BTreeMap::new();
    let mut names = std::collections::HashSet::new();
    for path in case_files() {
        let text = fs::read_to_string(&path).unwrap();
        let file: CaseFile =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            file.source.get("basis").is_some_and(Value::is_string),
            "{}: the file's source must say what its outcomes rest on",
            path.display()
        );
        for case in &file.cases {
            assert!(
                names.insert(case.name.clone()),
                "duplicate case {}",
                case.name
            );
            assert!(
                case.source.contains_key("url") || case.source.contains_key("file"),
                "{}: no source",
                case.name
            );
            if let Some(b) = case.behaviour {
                *per_behaviour.entry(b).or_default() += 1;
            }
            if let Err(why) = check(case) {
                failures.push(format!("{}: {why}", case.name));
            }
        }
        per_file.push((path.file_name().unwrap().to_owned(), file.cases.len()));
    }
    eprintln!("cases per file: {per_file:?}; per behaviour: {per_behaviour:?}");
    assert!(
        failures.is_empty(),
        "{} of the cases disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Each behaviour of the issue is pinned by more than one case.
    for behaviour in [
        Behaviour::AnythingButNull,
        Behaviour::AnythingButNonString,
        Behaviour::AnythingButEmptyAffix,
        Behaviour::DottedKeys,
        Behaviour::Numbers,
        Behaviour::DuplicateKeys,
        Behaviour::LambdaOnly,
    ] {
        let n = per_behaviour.get(&behaviour).copied().unwrap_or(0);
        assert!(n >= 2, "{behaviour:?} has {n} cases");
    }
}

#[test]
fn not_in_lambda_names_the_operator_and_the_page() {
    for (pattern, operator) in [
        (r#"{"f": [{"wildcard": "*.png"}]}"#, "wildcard"),
        (r#"{"ip": [{"cidr": "10.0.0.0/24"}]}"#, "cidr"),
        (
            r#"{"f": [{"anything-but": {"wildcard": "*/lib/*"}}]}"#,
            "anything-but/wildcard",
        ),
    ] {
        let err = Pattern::parse(pattern).unwrap_err();
        assert!(
            matches!(&err, FilterError::NotInLambda { operator: o, .. } if *o == operator),
            "{pattern}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&format!("`{operator}`")), "{message}");
        assert!(message.contains(LAMBDA_FILTER_SYNTAX_URL), "{message}");
    }
}
