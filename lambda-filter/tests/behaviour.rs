//! The crate's behaviour beyond the AWS cases of `conformance.rs`: the pipeline's own DynamoDB
//! records, arrays, `$or`, the errors a refused pattern gets, and the bounds on hostile input.

use lambda_filter::{FilterCriteria, FilterError, Pattern, MAX_OR_COMBINATIONS, MAX_PATTERN_CHARS};
use serde_json::{json, Value};

fn pattern(p: &str) -> Pattern {
    Pattern::parse(p).unwrap_or_else(|e| panic!("pattern {p} should parse: {e}"))
}

fn matches(p: &str, event: Value) -> bool {
    pattern(p).matches(&event)
}

fn parse_error(p: &str) -> String {
    match Pattern::parse(p) {
        Ok(parsed) => panic!("pattern {p} should be rejected, parsed as {parsed:?}"),
        Err(e) => e.to_string(),
    }
}

/// The DynamoDB stream record used by the engine's own tests.
fn ddb_modify() -> Value {
    json!({
        "eventID": "1", "eventName": "MODIFY", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"id": {"S": "abc"}},
            "OldImage": {"id": {"S": "abc"}, "status": {"S": "uploaded"}},
            "NewImage": {"id": {"S": "abc"}, "status": {"S": "processed"}, "size": {"N": "1024"}},
            "SequenceNumber": "111", "SizeBytes": 26,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

#[test]
fn or_combines_with_sibling_fields_and_nests() {
    let p = r#"{"source": ["shop"], "detail": {"$or": [
        {"price": [{"numeric": [">", 100]}]},
        {"$or": [{"vip": [true]}, {"coupon": [{"exists": true}]}]}
    ]}}"#;
    assert!(matches(
        p,
        json!({"source": "shop", "detail": {"price": 150}})
    ));
    assert!(matches(
        p,
        json!({"source": "shop", "detail": {"vip": true}})
    ));
    assert!(matches(
        p,
        json!({"source": "shop", "detail": {"coupon": "X"}})
    ));
    assert!(!matches(
        p,
        json!({"source": "shop", "detail": {"price": 50}})
    ));
    assert!(!matches(
        p,
        json!({"source": "web", "detail": {"price": 150}})
    ));
}

#[test]
fn anything_but_forms() {
    assert!(matches(
        r#"{"a": [{"anything-but": "x"}]}"#,
        json!({"a": "y"})
    ));
    assert!(!matches(
        r#"{"a": [{"anything-but": "x"}]}"#,
        json!({"a": "x"})
    ));
    let numbers = r#"{"code": [{"anything-but": [400, 404]}]}"#;
    assert!(matches(numbers, json!({"code": 200})));
    assert!(!matches(numbers, json!({"code": 404})));
    let prefix = r#"{"state": [{"anything-but": {"prefix": "init"}}]}"#;
    assert!(matches(prefix, json!({"state": "running"})));
    assert!(!matches(prefix, json!({"state": "initializing"})));
    let suffix = r#"{"file": [{"anything-but": {"suffix": [".tmp", ".bak"]}}]}"#;
    assert!(matches(suffix, json!({"file": "a.png"})));
    assert!(!matches(suffix, json!({"file": "a.bak"})));
    let ignore_case = r#"{"s": [{"anything-but": {"equals-ignore-case": ["Texas"]}}]}"#;
    assert!(matches(ignore_case, json!({"s": "Ohio"})));
    assert!(!matches(ignore_case, json!({"s": "TEXAS"})));
}

#[test]
fn numeric_single_comparisons() {
    assert!(matches(
        r#"{"n": [{"numeric": ["<", 0]}]}"#,
        json!({"n": -0.5})
    ));
    assert!(!matches(
        r#"{"n": [{"numeric": ["<", 0]}]}"#,
        json!({"n": 0})
    ));
    assert!(matches(
        r#"{"n": [{"numeric": [">=", 5]}]}"#,
        json!({"n": 5})
    ));
    assert!(matches(
        r#"{"n": [{"numeric": ["<=", 5]}]}"#,
        json!({"n": 5})
    ));
    assert!(!matches(
        r#"{"n": [{"numeric": [">", 5]}]}"#,
        json!({"n": 5})
    ));
    // The lower bound comes first, as AWS requires (event-ruler's JsonRuleCompilerTest).
    assert!(matches(
        r#"{"n": [{"numeric": [">=", 0, "<", 5]}]}"#,
        json!({"n": 0})
    ));
    assert!(Pattern::parse(r#"{"n": [{"numeric": ["<", 5, ">=", 0]}]}"#).is_err());
}

#[test]
fn exact_numbers_compare_by_value() {
    // AWS matches [300] with 300.0, whatever its pages say (see the crate docs).
    assert!(matches(r#"{"n": [300]}"#, json!({"n": 300})));
    assert!(matches(r#"{"n": [300]}"#, json!({"n": 300.0})));
    assert!(matches(r#"{"n": [3.0e2]}"#, json!({"n": 300})));
    assert!(matches(r#"{"n": [-0.5]}"#, json!({"n": -0.5})));
    assert!(!matches(r#"{"n": [300]}"#, json!({"n": 300.5})));
    assert!(!matches(r#"{"n": [300]}"#, json!({"n": "300"})));
    assert!(!matches(r#"{"n": ["300"]}"#, json!({"n": 300})));
    assert!(matches(r#"{"b": [true]}"#, json!({"b": true})));
    assert!(!matches(r#"{"b": [true]}"#, json!({"b": "true"})));
}

#[test]
fn integers_a_double_would_round_compare_exactly() {
    // 2^53 + 1 has no exact double: AWS compares it by its text, so it equals only itself.
    let p = r#"{"n": [9007199254740993]}"#;
    assert!(matches(p, json!({"n": 9_007_199_254_740_993_u64})));
    assert!(!matches(p, json!({"n": 9_007_199_254_740_992_u64})));
    assert!(!matches(p, json!({"n": 9_007_199_254_740_992.0})));
    // It cannot be a numeric bound or an anything-but number.
    assert!(
        parse_error(r#"{"n": [{"numeric": [">", 9007199254740993]}]}"#).contains("exact double")
    );
    assert!(
        parse_error(r#"{"n": [{"anything-but": [9007199254740993]}]}"#).contains("exact double")
    );
}

#[test]
fn ddb_insert_pattern_does_not_match_modify() {
    let p =
        r#"{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["uploaded"]}}}}"#;
    assert!(!matches(p, ddb_modify()));
    let p =
        r#"{"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"status": {"S": ["processed"]}}}}"#;
    assert!(matches(p, ddb_modify()));
}

#[test]
fn ddb_old_and_new_image_transition() {
    let p = r#"{"dynamodb": {"NewImage": {"status": {"S": ["processed"]}},
                              "OldImage": {"status": {"S": ["uploaded"]}}}}"#;
    assert!(matches(p, ddb_modify()));
    let reversed = r#"{"dynamodb": {"NewImage": {"status": {"S": ["uploaded"]}},
                                     "OldImage": {"status": {"S": ["processed"]}}}}"#;
    assert!(!matches(reversed, ddb_modify()));
}

#[test]
fn ddb_numeric_on_size_bytes() {
    assert!(matches(
        r#"{"dynamodb": {"SizeBytes": [{"numeric": [">", 0, "<=", 26]}]}}"#,
        ddb_modify()
    ));
    assert!(!matches(
        r#"{"dynamodb": {"SizeBytes": [{"numeric": [">", 26]}]}}"#,
        ddb_modify()
    ));
    assert!(matches(
        r#"{"dynamodb": {"SizeBytes": [{"numeric": ["=", 26]}]}}"#,
        ddb_modify()
    ));
}

#[test]
fn ddb_numeric_on_n_value_never_matches() {
    let numeric = r#"{"dynamodb": {"NewImage": {"size": {"N": [{"numeric": [">", 0]}]}}}}"#;
    assert!(!matches(numeric, ddb_modify()), "N values are strings");
    let exact = r#"{"dynamodb": {"NewImage": {"size": {"N": ["1024"]}}}}"#;
    assert!(matches(exact, ddb_modify()));
}

#[test]
fn ddb_metadata_and_missing_fields() {
    assert!(matches(
        r#"{"eventName": [{"anything-but": ["REMOVE"]}]}"#,
        ddb_modify()
    ));
    assert!(matches(
        r#"{"awsRegion": [{"prefix": "us-"}], "eventSource": ["aws:dynamodb"]}"#,
        ddb_modify()
    ));
    assert!(!matches(
        r#"{"dynamodb": {"NewImage": {"missing": {"S": ["x"]}}}}"#,
        ddb_modify()
    ));
    assert!(matches(
        r#"{"dynamodb": {"NewImage": {"missing": [{"exists": false}]}}}"#,
        ddb_modify()
    ));
    assert!(!matches(
        r#"{"dynamodb": {"OldImage": {"size": {"N": [{"exists": true}]}}}}"#,
        ddb_modify()
    ));
}

// --- Arrays in events.

#[test]
fn event_arrays_match_any_element() {
    assert!(matches(
        r#"{"tags": ["urgent"]}"#,
        json!({"tags": ["low", "urgent"]})
    ));
    assert!(!matches(
        r#"{"tags": ["urgent"]}"#,
        json!({"tags": ["low"]})
    ));
    assert!(matches(
        r#"{"n": [{"numeric": [">", 5]}]}"#,
        json!({"n": [1, [9]]})
    ));
    assert!(!matches(
        r#"{"tags": [{"exists": true}]}"#,
        json!({"tags": []})
    ));
}

#[test]
fn event_arrays_of_objects_match_within_one_element() {
    let p = r#"{"items": {"sku": ["A"], "qty": [{"numeric": [">", 1]}]}}"#;
    assert!(matches(
        p,
        json!({"items": [{"sku": "B", "qty": 1}, {"sku": "A", "qty": 2}]})
    ));
    assert!(!matches(
        p,
        json!({"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]})
    ));
}

#[test]
fn duplicate_keys_keep_the_last_value() {
    let p = r#"{"k": ["hello"], "u": ["t"], "k": ["world"]}"#;
    assert!(matches(p, json!({"k": "world", "u": "t"})));
    assert!(!matches(p, json!({"k": "hello", "u": "t"})));
}

#[test]
fn a_repeated_object_key_keeps_the_fields_of_both() {
    // AWS reads the pattern as paths: `x.a` and `x.b` are different fields, `x.a` twice is one.
    let p = r#"{"x": {"a": ["1"]}, "x": {"b": ["2"]}, "x": {"a": ["3"]}}"#;
    assert!(matches(p, json!({"x": {"a": "3", "b": "2"}})));
    assert!(
        !matches(p, json!({"x": {"a": "1", "b": "2"}})),
        "x.a was replaced"
    );
    assert!(!matches(p, json!({"x": {"a": "3"}})), "x.b still counts");
    // A dotted key and a nested object name the same field.
    let p = r#"{"x": {"a": ["1"]}, "x.a": ["3"]}"#;
    assert!(matches(p, json!({"x": {"a": "3"}})));
    assert!(!matches(p, json!({"x": {"a": "1"}})));
}

#[test]
fn dotted_record_keys_merge_with_nested_objects() {
    let p = r#"{"a": {"b": ["1"], "c": ["2"]}}"#;
    assert!(matches(p, json!({"a.b": "1", "a": {"c": "2"}})));
    assert!(matches(p, json!({"a": {"b.x": 0, "b": "1"}, "a.c": "2"})));
    assert!(!matches(p, json!({"a.b": "1"})));
    // An object that arrives through a dotted key goes with every element of an array there.
    let p = r#"{"a": {"b": {"x": [1], "y": [2]}}}"#;
    assert!(matches(
        p,
        json!({"a.b": {"x": 1}, "a": {"b": [{"y": 3}, {"y": 2}]}})
    ));
    assert!(!matches(
        p,
        json!({"a.b": {"x": 1}, "a": {"b": [{"y": 3}]}})
    ));
}

#[test]
fn anything_but_passes_values_no_exclusion_names() {
    for p in [
        r#"{"s": [{"anything-but": "x"}]}"#,
        r#"{"s": [{"anything-but": ["x", "y"]}]}"#,
        r#"{"s": [{"anything-but": {"equals-ignore-case": "x"}}]}"#,
        r#"{"s": [{"anything-but": {"prefix": "x"}}]}"#,
        r#"{"s": [{"anything-but": {"suffix": "x"}}]}"#,
    ] {
        for value in [json!(null), json!(7), json!(true), json!("other")] {
            assert!(matches(p, json!({"s": value})), "{p} with {value}");
        }
        assert!(!matches(p, json!({"s": "x"})), "{p} excludes x");
        assert!(!matches(p, json!({})), "{p}: a missing field never matches");
        assert!(
            !matches(p, json!({"s": {"x": 1}})),
            "{p}: an object is not a value"
        );
    }
    let numbers = r#"{"n": [{"anything-but": [100, 200]}]}"#;
    assert!(!matches(numbers, json!({"n": 100.0})));
    assert!(matches(numbers, json!({"n": "100"})));
    assert!(matches(numbers, json!({"n": null})));
}

// --- FilterCriteria.

#[test]
fn criteria_or_across_patterns() {
    let criteria = FilterCriteria::parse(&[
        r#"{"eventName": ["INSERT"]}"#,
        r#"{"dynamodb": {"NewImage": {"status": {"S": ["processed"]}}}}"#,
    ])
    .unwrap();
    assert!(!criteria.is_empty());
    assert!(criteria.matches(&ddb_modify()));
    assert!(criteria.matches(&json!({"eventName": "INSERT"})));
    assert!(!criteria.matches(&json!({"eventName": "REMOVE"})));
}

#[test]
fn empty_criteria_match_everything() {
    let criteria = FilterCriteria::parse::<&str>(&[]).unwrap();
    assert!(criteria.is_empty());
    assert!(criteria.matches(&ddb_modify()));
    assert!(criteria.matches(&json!(null)));
}

#[test]
fn criteria_errors_name_the_filter() {
    let patterns = vec![r#"{"a": ["x"]}"#.to_owned(), r#"{"a": "x"}"#.to_owned()];
    let err = FilterCriteria::parse(&patterns).unwrap_err();
    assert!(
        matches!(err, FilterError::InFilter { index: 1, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with("Filters[1]: "), "{msg}");
    assert!(msg.contains("`a`"), "{msg}");
}

// --- Malformed patterns.

#[test]
fn rejects_non_json_and_non_objects() {
    assert!(parse_error("{not json").contains("not valid JSON"));
    assert!(parse_error(r#"["a"]"#).contains("must be a JSON object, not an array"));
    assert!(parse_error("42").contains("not a number"));
    assert!(parse_error("{}").contains("empty object"));
    assert!(parse_error(r#"{"a": {}}"#).contains("at `a`"));
}

#[test]
fn rejects_leaves_that_are_not_arrays() {
    let msg = parse_error(r#"{"dynamodb": {"NewImage": {"status": {"S": "x"}}}}"#);
    assert!(msg.contains("`dynamodb.NewImage.status.S`"), "{msg}");
    assert!(msg.contains("got a string"), "{msg}");
    assert!(parse_error(r#"{"a": 1}"#).contains("got a number"));
    assert!(parse_error(r#"{"a": []}"#).contains("empty array"));
    assert!(parse_error(r#"{"a": [["x"]]}"#).contains("nested arrays"));
}

#[test]
fn rejects_unknown_or_malformed_operators() {
    let msg = parse_error(r#"{"a": ["x", {"glob": "*.png"}]}"#);
    assert!(
        msg.contains("unknown operator `glob`") && msg.contains("`a[1]`"),
        "{msg}"
    );
    assert!(parse_error(r#"{"a": [{"NUMERIC": ["=", 5]}]}"#).contains("unknown operator"));
    assert!(parse_error(r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#).contains("exactly one key"));
    assert!(parse_error(r#"{"a": [{}]}"#).contains("exactly one key"));
    assert!(parse_error(r#"{"a": [{"prefix": 1}]}"#).contains("`prefix` expects a string"));
    assert!(parse_error(r#"{"a": [{"exists": "yes"}]}"#).contains("true or false"));
    assert!(parse_error(r#"{"a": [{"anything-but": []}]}"#).contains("non-empty"));
    assert!(parse_error(r#"{"a": [{"anything-but": ["x", 1]}]}"#)
        .contains("only strings or only numbers"));
    assert!(parse_error(r#"{"a": [{"anything-but": null}]}"#).contains("`anything-but` expects"));
    assert!(parse_error(r#"{"a": [{"anything-but": {"prefix": ""}}]}"#).contains("empty string"));
    assert!(
        parse_error(r#"{"a": [{"anything-but": {"suffix": ["x", ""]}}]}"#).contains("empty string")
    );
    assert!(parse_error(r#"{"a": [{"prefix": ["x"]}]}"#).contains("`prefix` expects"));
    assert!(parse_error(r#"{"a": [{"equals-ignore-case": ["x"]}]}"#).contains("expects a string"));
    assert!(
        parse_error(r#"{"a": [{"anything-but": {"numeric": [">", 1]}}]}"#)
            .contains("inside `anything-but`")
    );
    assert!(parse_error(r#"{"$or": {"a": ["x"]}}"#).contains("`$or` must be an array"));
    assert!(parse_error(r#"{"$or": []}"#).contains("at least two"));
    assert!(parse_error(r#"{"$or": [{"a": ["x"]}]}"#).contains("at least two"));
    assert!(parse_error(r#"{"$or": [{"a": ["x"]}, {"prefix": ["y"]}]}"#).contains("reserved"));
    assert!(parse_error(r#"{"$or": [["x"], {"a": ["y"]}]}"#).contains("branches must be objects"));
}

#[test]
fn rejects_bad_numeric_specs() {
    for bad in [
        r#"{"n": [{"numeric": 5}]}"#,
        r#"{"n": [{"numeric": []}]}"#,
        r#"{"n": [{"numeric": [">"]}]}"#,
        r#"{"n": [{"numeric": [">", 1, "<"]}]}"#,
        r#"{"n": [{"numeric": ["!=", 1]}]}"#,
        r#"{"n": [{"numeric": [">", "5"]}]}"#,
        r#"{"n": [{"numeric": [">", 1, ">=", 2]}]}"#,
        r#"{"n": [{"numeric": ["=", 1, "<", 2]}]}"#,
        r#"{"n": [{"numeric": [">", 0, "<", 5, "<", 6]}]}"#,
        r#"{"n": [{"numeric": ["<", 5, ">", 0]}]}"#,
        r#"{"n": [{"numeric": [">", 5, "<", 5]}]}"#,
        r#"{"n": [{"numeric": [">=", 5, "<=", 1]}]}"#,
    ] {
        let msg = parse_error(bad);
        assert!(
            msg.contains("`n[0]`") && msg.contains("numeric"),
            "{bad}: {msg}"
        );
    }
}

#[test]
fn rejects_patterns_over_the_length_limit() {
    let value = "x".repeat(MAX_PATTERN_CHARS);
    let long = format!(r#"{{"a": ["{value}"]}}"#);
    assert!(matches!(Pattern::parse(&long), Err(FilterError::TooLong(n)) if n == long.len()));
    let fits = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(MAX_PATTERN_CHARS - 11));
    assert_eq!(fits.chars().count(), MAX_PATTERN_CHARS);
    assert!(Pattern::parse(&fits).is_ok());
}

// --- Bounds on what a pattern or a record can cost.

/// A pattern of `n` top-level `$or`s of two branches each: 2^n combinations.
fn or_chain(n: usize) -> String {
    let ors: Vec<String> = (0..n)
        .map(|i| format!(r#""k{i}": {{"$or": [{{"a": ["x"]}}, {{"b": ["x"]}}]}}"#))
        .collect();
    format!("{{{}}}", ors.join(", "))
}

#[test]
fn or_combinations_are_bounded() {
    assert!(2_usize.pow(9) <= MAX_OR_COMBINATIONS && 2_usize.pow(10) > MAX_OR_COMBINATIONS);
    let p = pattern(&or_chain(9));
    let all_a: serde_json::Map<String, Value> = (0..9)
        .map(|i| (format!("k{i}"), json!({"a": "x"})))
        .collect();
    assert!(p.matches(&Value::Object(all_a.clone())));
    let mut one_missing = all_a;
    one_missing.remove("k4");
    assert!(!p.matches(&Value::Object(one_missing)));
    assert!(matches!(
        Pattern::parse(&or_chain(10)),
        Err(FilterError::TooManyCombinations)
    ));
}

#[test]
fn a_record_key_of_many_dots_costs_only_the_pattern_depth() {
    // 200,000 levels if split in full; the view stops at the pattern's depth.
    let key = "a.".repeat(200_000) + "a";
    let record = json!({ key: "x", "a": {"a": "y"} });
    assert!(matches(r#"{"a": {"a": ["y"]}}"#, record.clone()));
    assert!(!matches(r#"{"a": {"a": ["x"]}}"#, record));
}

#[test]
fn the_deepest_pattern_that_fits_the_length_limit_matches() {
    // 2,000 levels of dotted key: the deepest path a 4,096-character pattern can name.
    let path = vec!["a"; 2_000].join(".");
    let text = format!(r#"{{"{path}": ["x"]}}"#);
    assert!(text.chars().count() <= MAX_PATTERN_CHARS);
    let p = pattern(&text);
    assert!(p.matches(&json!({ path.clone(): "x" })));
    assert!(!p.matches(&json!({ path: "y" })));
}
