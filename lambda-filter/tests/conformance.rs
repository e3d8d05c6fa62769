//! Conformance: the examples of AWS's "Control which events Lambda sends to your function" and
//! "Using event filtering with a DynamoDB event source", each as a test, plus the rules those pages
//! leave implicit (arrays, `$or`, duplicate keys, limits) as EventBridge documents them.

use lambda_filter::{FilterCriteria, FilterError, Pattern, MAX_PATTERN_CHARS};
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

/// The sample record of AWS's "Using event filtering with a DynamoDB event source".
fn ddb_doc_record() -> Value {
    json!({
        "eventID": "1", "eventVersion": "1.0",
        "dynamodb": {
            "ApproximateCreationDateTime": "1678831218.0",
            "Keys": {"CustomerName": {"S": "AnyCompany Industries"}},
            "NewImage": {
                "AccountManager": {"S": "Pat Candella"},
                "PaymentTerms": {"S": "60 days"},
                "CustomerName": {"S": "AnyCompany Industries"}
            },
            "SequenceNumber": "111", "SizeBytes": 26, "StreamViewType": "NEW_IMAGE"
        }
    })
}

// --- The comparison-operator table of "Control which events Lambda sends to your function".

#[test]
fn doc_null() {
    let p = r#"{"UserID": [null]}"#;
    assert!(matches(p, json!({"UserID": null})));
    assert!(!matches(p, json!({"UserID": "u-1"})));
    assert!(!matches(p, json!({"UserID": ""})));
    assert!(
        !matches(p, json!({"Other": 1})),
        "null does not mean missing"
    );
}

#[test]
fn doc_empty() {
    let p = r#"{"LastName": [""]}"#;
    assert!(matches(p, json!({"LastName": ""})));
    assert!(!matches(p, json!({"LastName": "Doe"})));
    assert!(!matches(p, json!({"LastName": null})));
    assert!(!matches(p, json!({})));
}

#[test]
fn doc_equals_is_case_sensitive() {
    let p = r#"{"Name": ["Alice"]}"#;
    assert!(matches(p, json!({"Name": "Alice"})));
    assert!(!matches(p, json!({"Name": "alice"})));
    assert!(!matches(p, json!({"Name": "Alice "})));
}

#[test]
fn doc_equals_ignore_case() {
    let p = r#"{"Name": [{"equals-ignore-case": "alice"}]}"#;
    assert!(matches(p, json!({"Name": "Alice"})));
    assert!(matches(p, json!({"Name": "ALICE"})));
    assert!(!matches(p, json!({"Name": "Alicia"})));
    assert!(!matches(p, json!({"Name": 1})));
}

#[test]
fn doc_and() {
    let p = r#"{"Location": ["New York"], "Day": ["Monday"]}"#;
    assert!(matches(
        p,
        json!({"Location": "New York", "Day": "Monday", "x": 1})
    ));
    assert!(!matches(
        p,
        json!({"Location": "New York", "Day": "Tuesday"})
    ));
    assert!(
        !matches(p, json!({"Location": "New York"})),
        "every field must exist"
    );
}

#[test]
fn doc_or() {
    let p = r#"{"PaymentType": ["Credit", "Debit"]}"#;
    assert!(matches(p, json!({"PaymentType": "Credit"})));
    assert!(matches(p, json!({"PaymentType": "Debit"})));
    assert!(!matches(p, json!({"PaymentType": "Cash"})));
}

#[test]
fn doc_or_multiple_fields() {
    let p = r#"{"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}"#;
    assert!(matches(p, json!({"Location": "New York", "Day": "Friday"})));
    assert!(matches(p, json!({"Location": "Boston", "Day": "Monday"})));
    assert!(matches(p, json!({"Day": "Monday"})));
    assert!(!matches(p, json!({"Location": "Boston", "Day": "Friday"})));
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
fn doc_not_anything_but() {
    let p = r#"{"Weather": [{"anything-but": ["Raining"]}]}"#;
    assert!(matches(p, json!({"Weather": "Sunny"})));
    assert!(!matches(p, json!({"Weather": "Raining"})));
    assert!(
        !matches(p, json!({"Temperature": 20})),
        "the field must exist"
    );
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
fn doc_numeric_equals() {
    let p = r#"{"Price": [{"numeric": ["=", 100]}]}"#;
    assert!(matches(p, json!({"Price": 100})));
    assert!(
        matches(p, json!({"Price": 100.0})),
        "numeric compares values"
    );
    assert!(!matches(p, json!({"Price": 101})));
    assert!(
        !matches(p, json!({"Price": "100"})),
        "numeric never matches strings"
    );
}

#[test]
fn doc_numeric_range() {
    let p = r#"{"Price": [{"numeric": [">", 10, "<=", 20]}]}"#;
    assert!(!matches(p, json!({"Price": 10})));
    assert!(matches(p, json!({"Price": 10.5})));
    assert!(matches(p, json!({"Price": 20})));
    assert!(!matches(p, json!({"Price": 20.01})));
    assert!(!matches(p, json!({"Price": -15})));
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
    // Bounds may come in either order.
    assert!(matches(
        r#"{"n": [{"numeric": ["<", 5, ">=", 0]}]}"#,
        json!({"n": 0})
    ));
}

#[test]
fn exact_numbers_compare_by_representation() {
    // Lambda: "300, 300.0, and 3.0e2 are not considered equal".
    assert!(matches(r#"{"n": [300]}"#, json!({"n": 300})));
    assert!(!matches(r#"{"n": [300]}"#, json!({"n": 300.0})));
    assert!(!matches(r#"{"n": [300]}"#, json!({"n": "300"})));
    assert!(matches(r#"{"b": [true]}"#, json!({"b": true})));
    assert!(!matches(r#"{"b": [true]}"#, json!({"b": "true"})));
}

#[test]
fn doc_exists() {
    let p = r#"{"ProductName": [{"exists": true}]}"#;
    assert!(matches(p, json!({"ProductName": "Widget"})));
    assert!(matches(p, json!({"ProductName": null})), "null is a value");
    assert!(!matches(p, json!({"Price": 3})));
    assert!(
        !matches(p, json!({"ProductName": {"S": "Widget"}})),
        "objects are not leaves"
    );
}

#[test]
fn doc_does_not_exist() {
    let p = r#"{"ProductName": [{"exists": false}]}"#;
    assert!(matches(p, json!({"Price": 3})));
    assert!(!matches(p, json!({"ProductName": "Widget"})));
    assert!(!matches(p, json!({"ProductName": null})));
    // exists:false on a nested path whose parent is missing.
    assert!(matches(
        r#"{"a": {"b": [{"exists": false}]}}"#,
        json!({"x": 1})
    ));
    assert!(!matches(
        r#"{"a": {"b": [{"exists": false}]}}"#,
        json!({"a": {"b": 1}})
    ));
}

#[test]
fn doc_begins_with() {
    let p = r#"{"Region": [{"prefix": "us-"}]}"#;
    assert!(matches(p, json!({"Region": "us-east-1"})));
    assert!(!matches(p, json!({"Region": "eu-west-1"})));
    assert!(!matches(p, json!({"Region": "US-east-1"})));
}

#[test]
fn doc_ends_with() {
    let p = r#"{"FileName": [{"suffix": ".png"}]}"#;
    assert!(matches(p, json!({"FileName": "photo.png"})));
    assert!(!matches(p, json!({"FileName": "photo.jpg"})));
    assert!(!matches(p, json!({"FileName": "photo.png.txt"})));
}

// --- The worked examples of the same page (Kinesis record and multi-level filtering).

#[test]
fn doc_kinesis_examples() {
    let record = json!({
        "kinesis": {"partitionKey": "1"},
        "partitionKey": "1",
        "data": {"City": "Seattle", "State": "WA", "Temperature": "46", "Month": "December"}
    });
    assert!(matches(
        r#"{"partitionKey": ["1"], "data": {"City": ["Seattle"]}}"#,
        record.clone()
    ));
    assert!(!matches(
        r#"{"partitionKey": ["1"], "data": {"Location": ["Los Angeles"]}}"#,
        record.clone()
    ));
    let temperature = r#"{"data": {"Temperature": [{"numeric": [">", 40, "<=", 60]}]}}"#;
    assert!(
        !matches(temperature, record),
        "\"46\" is a string, not a number"
    );
    assert!(matches(temperature, json!({"data": {"Temperature": 46}})));
}

#[test]
fn doc_multi_level_dynamodb_key() {
    let record = json!({"dynamodb": {
        "Keys": {"Id": {"N": "101"}},
        "NewImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
        "SequenceNumber": "111", "SizeBytes": 26, "StreamViewType": "NEW_AND_OLD_IMAGES"
    }});
    assert!(matches(
        r#"{"dynamodb": {"Keys": {"Id": {"N": ["101"]}}}}"#,
        record.clone()
    ));
    assert!(!matches(
        r#"{"dynamodb": {"Keys": {"Id": {"N": [101]}}}}"#,
        record.clone()
    ));
    assert!(!matches(
        r#"{"dynamodb": {"Keys": {"Id": {"N": ["102"]}}}}"#,
        record
    ));
}

// --- "Using event filtering with a DynamoDB event source".

#[test]
fn doc_dynamodb_table_key_and_attributes() {
    let record = ddb_doc_record();
    let key = r#"{"dynamodb": {"Keys": {"CustomerName": {"S": ["AnyCompany Industries"]}}}}"#;
    assert!(matches(key, record.clone()));
    let managers = r#"{"dynamodb": {"NewImage": {"AccountManager": {"S": ["Pat Candella", "Shirley Rodriguez"]}}}}"#;
    assert!(matches(managers, record.clone()));
    let other = r#"{"dynamodb": {"NewImage": {"AccountManager": {"S": ["Shirley Rodriguez"]}}}}"#;
    assert!(!matches(other, record));
}

#[test]
fn doc_dynamodb_boolean_expressions() {
    let record = ddb_doc_record();
    let and = r#"{"dynamodb": {"NewImage": {
        "AccountManager": {"S": ["Pat Candella"]}, "PaymentTerms": {"S": ["60 days"]}}}}"#;
    assert!(matches(and, record.clone()));
    let and_fails = r#"{"dynamodb": {"NewImage": {
        "AccountManager": {"S": ["Pat Candella"]}, "PaymentTerms": {"S": ["30 days"]}}}}"#;
    assert!(!matches(and_fails, record.clone()));
    let or = r#"{"$or": [
        {"dynamodb": {"NewImage": {"PaymentTerms": {"S": ["30 days"]}}}},
        {"dynamodb": {"Keys": {"CustomerName": {"S": [{"prefix": "AnyCompany"}]}}}}]}"#;
    assert!(matches(or, record));
}

#[test]
fn doc_dynamodb_exists_only_on_leaves() {
    let record = json!({"dynamodb": {"NewImage": {
        "UserID": {"S": "12345"}, "Name": {"S": "John Doe"},
        "Organizations": {"L": [{"S": "Sales"}, {"S": "Marketing"}, {"S": "Support"}]}
    }}});
    let intermediate = r#"{"dynamodb": {"NewImage": {"Organizations": [{"exists": true}]}}}"#;
    assert!(
        !matches(intermediate, record.clone()),
        "Organizations is not a leaf"
    );
    let leaf = r#"{"dynamodb": {"NewImage": {"Organizations": {"L": {"S": [{"exists": true}]}}}}}"#;
    assert!(matches(leaf, record.clone()));
    let member = r#"{"dynamodb": {"NewImage": {"Organizations": {"L": {"S": ["Marketing"]}}}}}"#;
    assert!(matches(member, record));
}

// --- DynamoDB stream records as the engine produces them.

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
    let msg = parse_error(r#"{"a": ["x", {"wildcard": "*.png"}]}"#);
    assert!(
        msg.contains("unknown operator `wildcard`") && msg.contains("`a[1]`"),
        "{msg}"
    );
    assert!(parse_error(r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#).contains("exactly one key"));
    assert!(parse_error(r#"{"a": [{}]}"#).contains("exactly one key"));
    assert!(parse_error(r#"{"a": [{"prefix": 1}]}"#).contains("`prefix` expects a string"));
    assert!(parse_error(r#"{"a": [{"exists": "yes"}]}"#).contains("true or false"));
    assert!(parse_error(r#"{"a": [{"anything-but": []}]}"#).contains("non-empty"));
    assert!(parse_error(r#"{"a": [{"anything-but": ["x", 1]}]}"#)
        .contains("all strings or all numbers"));
    assert!(
        parse_error(r#"{"a": [{"anything-but": {"numeric": [">", 1]}}]}"#)
            .contains("inside `anything-but`")
    );
    assert!(parse_error(r#"{"$or": {"a": ["x"]}}"#).contains("`$or` must be an array"));
    assert!(parse_error(r#"{"$or": []}"#).contains("must not be empty"));
    assert!(parse_error(r#"{"$or": [["x"]]}"#).contains("branches must be objects"));
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
