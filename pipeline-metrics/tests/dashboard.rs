//! The template's CloudWatch dashboard, checked offline: its body is JSON once `!Sub` has put the
//! stack's names in, it graphs every metric of [`pipeline_metrics::ALL`] in the namespace the
//! functions write to (the stack's name) with that metric's dimensions, each failure reason, every
//! function's cold starts, the alarms and both stream mappings' iterator age, and nothing else in
//! the namespace.

use std::collections::BTreeSet;

use pipeline_metrics::{FailureReason, ALL, COLD_STARTS, FUNCTION, IMAGES_FAILED, REASON};
use serde_json::Value;
use serde_norway::Value as Yaml;

const NAMESPACE: &str = "${AWS::StackName}";

fn template() -> Yaml {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The dashboard's body as written: the text of its `!Sub`, with its `${...}` references kept.
fn dashboard_body(template: &Yaml) -> Value {
    let dashboard = &template["Resources"]["MetricsDashboard"];
    assert_eq!(dashboard["Type"], "AWS::CloudWatch::Dashboard");
    let Yaml::Tagged(sub) = &dashboard["Properties"]["DashboardBody"] else {
        panic!("DashboardBody is a !Sub");
    };
    assert_eq!(sub.tag.to_string(), "!Sub");
    let text = sub.value.as_str().unwrap();
    serde_json::from_str(text).unwrap_or_else(|e| panic!("the body is not JSON: {e}\n{text}"))
}

fn widgets(body: &Value) -> &Vec<Value> {
    body["widgets"].as_array().unwrap()
}

/// Every metric line of the metric widgets: [namespace, name, dimension, value, ..., {options}?].
fn metric_lines(body: &Value) -> Vec<Vec<Value>> {
    widgets(body)
        .iter()
        .filter(|w| w["type"] == "metric")
        .flat_map(|w| w["properties"]["metrics"].as_array().unwrap().clone())
        .map(|line| line.as_array().unwrap().clone())
        .collect()
}

/// A line's dimension names and values (after namespace and name, up to an options object).
fn dimensions(line: &[Value]) -> Vec<(String, String)> {
    let strings: Vec<&str> = line[2..].iter().filter_map(Value::as_str).collect();
    assert!(
        !line[2..].iter().any(|v| v.as_str() == Some(".")),
        "no shorthand: {line:?}"
    );
    strings
        .chunks(2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect()
}

#[test]
fn the_dashboard_graphs_every_metric_the_functions_emit_with_its_dimensions() {
    let template = template();
    let body = dashboard_body(&template);
    let lines = metric_lines(&body);
    let ours: Vec<&Vec<Value>> = lines.iter().filter(|l| l[0] == NAMESPACE).collect();

    // Nothing in the namespace that the code does not emit, with the dimensions it emits.
    for line in &ours {
        let name = line[1].as_str().unwrap();
        let metric = ALL
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("the dashboard graphs {name}, which no function emits"));
        let names: Vec<String> = dimensions(line).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, metric.dimensions, "{name}'s dimensions");
    }
    // Every metric the code emits is on it.
    let graphed: BTreeSet<&str> = ours.iter().map(|l| l[1].as_str().unwrap()).collect();
    for m in ALL {
        assert!(
            graphed.contains(m.name),
            "{} is not on the dashboard",
            m.name
        );
    }
    // Each failure reason, and every function's cold starts.
    let values_of = |metric: &str, dimension: &str| -> BTreeSet<String> {
        ours.iter()
            .filter(|l| l[1] == metric)
            .flat_map(|l| dimensions(l))
            .filter(|(n, _)| n == dimension)
            .map(|(_, v)| v)
            .collect()
    };
    let reasons: BTreeSet<String> = FailureReason::ALL
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    assert_eq!(values_of(IMAGES_FAILED, REASON), reasons);
    let functions: BTreeSet<String> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .map(|r| {
            r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(functions.len(), 5);
    assert_eq!(values_of(COLD_STARTS, FUNCTION), functions);

    // The functions write to the namespace the dashboard reads.
    assert_eq!(
        template["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"],
        serde_norway::from_str::<Yaml>("!Ref AWS::StackName").unwrap()
    );

    // Both stream mappings' iterator age.
    let iterator_age: BTreeSet<String> = lines
        .iter()
        .filter(|l| l[0] == "AWS/Lambda" && l[1] == "IteratorAge")
        .flat_map(|l| dimensions(l))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        iterator_age,
        BTreeSet::from([
            "${ProcessFunction}".to_owned(),
            "${NoticeFunction}".to_owned()
        ])
    );

    // Every alarm of the template, by its ARN.
    let alarms: BTreeSet<String> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(id, _)| format!("${{{}.Arn}}", id.as_str().unwrap()))
        .collect();
    assert!(!alarms.is_empty());
    let shown: BTreeSet<String> = widgets(&body)
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shown, alarms);
}
