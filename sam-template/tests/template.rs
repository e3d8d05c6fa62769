//! The repository's template.yaml, read as the engine reads it: its functions, their sources, the
//! resources they name, the values of its expressions; and what is refused, by name.

use std::collections::BTreeMap;

use sam_template::{
    Expr, GeneratedSecret, Names, NotHosted, Resource, SecretSpec, Source, Template, TemplateError,
    Unset,
};

const TEMPLATE: &str = include_str!("../../template.yaml");

fn parse(text: &str) -> Result<Template, TemplateError> {
    Template::parse(text, &BTreeMap::new())
}

/// Names as a test sees them.
struct Here;

impl Names for Here {
    fn resource(&self, id: &str) -> Option<String> {
        (id != "Nowhere").then(|| format!("<{id}>"))
    }
    fn attribute(&self, id: &str, attribute: &str) -> Option<String> {
        Some(format!("<{id}.{attribute}>"))
    }
    fn pseudo(&self, name: &str) -> Option<String> {
        Some(format!("<{name}>"))
    }
    fn secret(&self, id: &str) -> Option<String> {
        (id == "<CursorSecret>").then(|| "s3cr3t".to_owned())
    }
}

#[test]
fn the_functions_and_their_sources() {
    let t = parse(TEMPLATE).unwrap();
    let binaries: Vec<&str> = t.functions.iter().map(|f| f.binary.as_str()).collect();
    for binary in ["upload", "process", "notice", "ingest", "failures"] {
        assert!(binaries.contains(&binary), "{binary} in {binaries:?}");
    }
    let process = &t.mappings("process");
    assert_eq!(process.len(), 1);
    assert_eq!(process[0].name, "ProcessFunction.Uploads");
    assert_eq!(process[0].batch_size, 10);
    assert_eq!(process[0].on_failure.as_deref(), Some("FailureQueue"));
    assert_eq!(t.function("process").unwrap().memory_size, Some(2048));
    assert_eq!(t.function("notice").unwrap().memory_size, Some(256));
    let upload = t.function("upload").unwrap();
    assert_eq!(upload.memory_size, Some(1024), "Globals' MemorySize");
    let routes: Vec<String> = upload
        .events
        .iter()
        .filter_map(|e| match &e.source {
            Source::Api(r) => Some(format!("{} {}", r.method, r.path)),
            _ => None,
        })
        .collect();
    assert!(routes.contains(&"POST /upload".to_owned()), "{routes:?}");
    assert!(routes.contains(&"GET /items/{id}".to_owned()), "{routes:?}");
    // A reservation's arrival, and a drop-in rule for every extension of every format taken, in
    // lower and upper case.
    assert_eq!(t.notification_rules("ingest").len(), 25);
    let ingest = t.function("ingest").unwrap();
    assert_eq!(ingest.async_config.name, "IngestFunction.Async");
    assert_eq!(ingest.async_config.maximum_retry_attempts, 2);
    let failures = t.function("failures").unwrap();
    let Source::Queue(queue) = &failures.events[0].source else {
        panic!("failures reads a queue");
    };
    assert_eq!(
        (queue.queue.as_str(), queue.batch_size),
        ("FailureQueue", 10)
    );
    assert!(queue.report_batch_item_failures);
    let Resource::Queue(spec) = &t.resources["FailureQueue"] else {
        panic!("FailureQueue is a queue");
    };
    assert_eq!(spec.visibility_timeout.as_secs(), 180);
    let redrive = spec.redrive.as_ref().unwrap();
    assert_eq!(
        (redrive.target.as_str(), redrive.max_receive_count),
        ("FailureArchive", 5)
    );
    let Resource::Table(table) = &t.resources["ImagesTable"] else {
        panic!("ImagesTable is a table");
    };
    assert_eq!(
        table.stream_view_type.as_deref(),
        Some("NEW_AND_OLD_IMAGES")
    );
    assert_eq!(table.indexes.len(), 3);
    assert_eq!(table.ttl_attribute.as_deref(), Some("ttl"));
}

#[test]
fn environments_resolve_parameters_resources_and_secrets() {
    let overrides = BTreeMap::from([("MaxPixels".to_owned(), "1000".to_owned())]);
    let t = Template::parse(TEMPLATE, &overrides).unwrap();
    let env = t
        .environment(t.function("process").unwrap(), &Here)
        .unwrap()
        .vars;
    assert_eq!(env["MAX_PIXELS"], "1000", "an override");
    assert_eq!(env["RENDITIONS"], t.parameters["Renditions"], "a default");
    assert_eq!(env["TABLE_NAME"], "<ImagesTable>", "from Globals");
    // The functions restate the bucket's own name: they name the bucket.
    assert_eq!(env["BUCKET_NAME"], "<ImagesBucket>");
    let upload = t
        .environment(t.function("upload").unwrap(), &Here)
        .unwrap()
        .vars;
    assert_eq!(
        upload["CURSOR_KEY_SECRET"], "<CursorSecret>",
        "a secret's name"
    );
    let dynamic = Expr::Sub {
        text: "{{resolve:secretsmanager:${CursorSecret}:SecretString}}".into(),
        variables: BTreeMap::new(),
    };
    assert_eq!(
        t.resolve(&dynamic, &Here, "test").unwrap(),
        "s3cr3t",
        "a dynamic reference"
    );
    let failures = t
        .environment(t.function("failures").unwrap(), &Here)
        .unwrap()
        .vars;
    assert_eq!(failures["PROCESS_FUNCTION"], "<ProcessFunction>");
    // Sub: parameters, pseudo parameters, attributes, literals.
    let sub = Expr::Sub {
        text: "${Renditions}|${AWS::Region}|${FailureQueue.Arn}|${!Literal}".into(),
        variables: BTreeMap::new(),
    };
    assert_eq!(
        t.resolve(&sub, &Here, "test").unwrap(),
        format!(
            "{}|<AWS::Region>|<FailureQueue.Arn>|${{Literal}}",
            t.parameters["Renditions"]
        )
    );
    // What has no value here says where it was needed.
    let err = t
        .resolve(&Expr::Ref("Nowhere".into()), &Here, "X.Environment.Y")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("X.Environment.Y") && err.contains("!Ref Nowhere"),
        "{err}"
    );
    assert!(t.unset_parameters.contains(&"Email".to_owned()));
}

/// Names as a host that has what the reader models (tables, buckets, topics, queues, secrets,
/// functions) and nothing else: no CloudFront distribution, no IAM role.
struct Modelled<'a>(&'a Template);

impl Names for Modelled<'_> {
    fn resource(&self, id: &str) -> Option<String> {
        match self.0.resources.get(id)? {
            Resource::Other { .. } => None,
            _ => Some(format!("<{id}>")),
        }
    }
    fn attribute(&self, id: &str, attribute: &str) -> Option<String> {
        self.resource(id).map(|r| format!("{r}.{attribute}"))
    }
    fn pseudo(&self, name: &str) -> Option<String> {
        Some(format!("<{name}>"))
    }
    fn secret(&self, _: &str) -> Option<String> {
        None
    }
}

#[test]
fn conditions_are_evaluated_over_the_parameters() {
    let t = parse(TEMPLATE).unwrap();
    // Defaults: RenditionAccess signed, OperatorEmail "", ApiAccessLogs "false".
    assert!(t.condition("SignedRenditions", &Here).unwrap());
    assert!(
        !t.condition("OperatorEmailGiven", &Here).unwrap(),
        "Not over Equals"
    );
    assert!(!t.condition("AccessLogs", &Here).unwrap());
    let overrides = BTreeMap::from([
        ("RenditionAccess".to_owned(), "public".to_owned()),
        ("OperatorEmail".to_owned(), "ops@example.com".to_owned()),
    ]);
    let t = Template::parse(TEMPLATE, &overrides).unwrap();
    assert!(!t.condition("SignedRenditions", &Here).unwrap());
    assert!(t.condition("OperatorEmailGiven", &Here).unwrap());

    // And, Or, Condition, in both spellings.
    let conditions = "Conditions:\n  \
        Signed: !Equals [!Ref RenditionAccess, signed]\n  \
        Logs: {\"Fn::Equals\": [{\"Ref\": ApiAccessLogs}, \"true\"]}\n  \
        Both: !And [!Condition Signed, !Condition Logs]\n  \
        Either: {\"Fn::Or\": [{\"Condition\": Signed}, {\"Condition\": Logs}]}\n  \
        Neither: !Not [!Condition Either]\n  \
        Region: !Equals [!Ref AWS::Region, <AWS::Region>]\n";
    let text = TEMPLATE.replacen("Conditions:\n", conditions, 1);
    for (access, logs, both, either) in [
        ("signed", "true", true, true),
        ("signed", "false", false, true),
        ("public", "true", false, true),
        ("public", "false", false, false),
    ] {
        let overrides = BTreeMap::from([
            ("RenditionAccess".to_owned(), access.to_owned()),
            ("ApiAccessLogs".to_owned(), logs.to_owned()),
        ]);
        let t = Template::parse(&text, &overrides).unwrap();
        let at = format!("{access} {logs}");
        assert_eq!(t.condition("Both", &Here).unwrap(), both, "{at}");
        assert_eq!(t.condition("Either", &Here).unwrap(), either, "{at}");
        assert_eq!(t.condition("Neither", &Here).unwrap(), !either, "{at}");
    }
    let t = parse(&text).unwrap();
    assert!(t.condition("Region", &Here).unwrap(), "pseudo parameters");
    // An unknown condition, a cycle and a function that is no condition function are errors.
    let err = t.condition("Nowhere", &Here).unwrap_err().to_string();
    assert!(err.contains("no condition Nowhere"), "{err}");
    let cycle = TEMPLATE.replacen(
        "Conditions:\n",
        "Conditions:\n  Loop: !Not [!Condition Loop]\n",
        1,
    );
    let err = parse(&cycle)
        .unwrap()
        .condition("Loop", &Here)
        .unwrap_err()
        .to_string();
    assert!(err.contains("refers to itself"), "{err}");
    let join = TEMPLATE.replacen(
        "Conditions:\n",
        "Conditions:\n  Odd: !Join [\"\", [a]]\n",
        1,
    );
    let err = parse(&join).unwrap_err().to_string();
    assert!(
        err.contains("Conditions.Odd") && err.contains("Join"),
        "{err}"
    );
}

#[test]
fn what_names_a_resource_the_host_does_not_have_is_left_unset_and_said_so() {
    let t = parse(TEMPLATE).unwrap();
    let upload = t.function("upload").unwrap();
    let env = t.environment(upload, &Modelled(&t)).unwrap();
    // The distribution and its key are CloudFront's; the secret's name is only text.
    assert_eq!(
        env.unset,
        [
            Unset {
                key: "CDN_KEY_PAIR_ID".into(),
                why: NotHosted {
                    resource: "RenditionsPublicKey".into(),
                    kind: "AWS::CloudFront::PublicKey".into()
                }
            },
            Unset {
                key: "CDN_URL".into(),
                why: NotHosted {
                    resource: "RenditionsCdn".into(),
                    kind: "AWS::CloudFront::Distribution".into()
                }
            },
        ]
    );
    assert_eq!(
        env.unset[1].to_string(),
        "CDN_URL (it names RenditionsCdn (AWS::CloudFront::Distribution))"
    );
    assert!(!env.vars.contains_key("CDN_URL") && !env.vars.contains_key("CDN_KEY_PAIR_ID"));
    assert_eq!(env.vars["CURSOR_KEY_SECRET"], "<CursorSecret>");
    assert_eq!(
        env.vars["CDN_SIGNING_KEY_SECRET"], "<AWS::StackName>/cdn-signing-key",
        "!If's true branch"
    );
    // With public renditions, !If takes its other branch: "" for both keys.
    let public = BTreeMap::from([("RenditionAccess".to_owned(), "public".to_owned())]);
    let t = Template::parse(TEMPLATE, &public).unwrap();
    let env = t
        .environment(t.function("upload").unwrap(), &Modelled(&t))
        .unwrap();
    assert_eq!(env.vars["CDN_KEY_PAIR_ID"], "");
    assert_eq!(env.vars["CDN_SIGNING_KEY_SECRET"], "");
    assert_eq!(env.unset.len(), 1, "{:?}", env.unset);
    // Where one value is needed, it is an error that names what is missing.
    let err = t
        .resolve(
            &Expr::GetAtt {
                resource: "RenditionsCdn".into(),
                attribute: "DomainName".into(),
            },
            &Modelled(&t),
            "X.Y",
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("X.Y") && err.contains("RenditionsCdn (AWS::CloudFront::Distribution"),
        "{err}"
    );
    // AWS::NoValue removes a variable, as on AWS; a name the template does not declare is an error.
    let text = TEMPLATE.replacen(
        "          CURSOR_KEY_SECRET: !Ref CursorSecret\n",
        "          CURSOR_KEY_SECRET: !Ref CursorSecret\n          GONE: !If [SignedRenditions, !Ref AWS::NoValue, x]\n          MISSING: !Ref Nowhere\n",
        1,
    );
    let t = parse(&text).unwrap();
    let err = t
        .environment(t.function("upload").unwrap(), &Modelled(&t))
        .unwrap_err()
        .to_string();
    assert!(err.contains("UploadFunction.Environment.MISSING"), "{err}");
    let t = parse(&text.replace("          MISSING: !Ref Nowhere\n", "")).unwrap();
    let env = t
        .environment(t.function("upload").unwrap(), &Modelled(&t))
        .unwrap();
    assert!(!env.vars.contains_key("GONE"));
    assert!(env.unset.iter().all(|u| u.key != "GONE"));
}

#[test]
fn a_generated_secret_is_read_as_generate_secret_string_describes_it() {
    let t = parse(TEMPLATE).unwrap();
    let Resource::Secret(SecretSpec::Generated(cursor)) = &t.resources["CursorSecret"] else {
        panic!(
            "CursorSecret is generated: {:?}",
            t.resources["CursorSecret"]
        );
    };
    // PasswordLength 48, ExcludePunctuation: letters and digits, one of each kind at least.
    assert_eq!(cursor.length, 48);
    assert_eq!(cursor.classes.len(), 3);
    assert_eq!(cursor.classes.iter().map(Vec::len).sum::<usize>(), 62);
    assert!(cursor.require_each_class);
    let generate = "      GenerateSecretString:\n        PasswordLength: 48\n        ExcludePunctuation: true\n";
    assert!(TEMPLATE.contains(generate));
    let secret = |settings: &str| {
        let text = TEMPLATE.replacen(
            generate,
            &format!("      GenerateSecretString:\n{settings}"),
            1,
        );
        match parse(&text)?.resources["CursorSecret"].clone() {
            Resource::Secret(SecretSpec::Generated(g)) => Ok::<_, TemplateError>(g),
            other => panic!("{other:?}"),
        }
    };
    let defaults = secret("        IncludeSpace: true\n").unwrap();
    assert_eq!(defaults.length, 32, "Secrets Manager's default length");
    assert_eq!(defaults.classes.len(), 5);
    assert!(defaults.classes[3]
        .iter()
        .copied()
        .eq(GeneratedSecret::PUNCTUATION.chars()));
    let few = secret(
        "        ExcludeCharacters: \"abcXYZ\"\n        ExcludeNumbers: true\n        ExcludeUppercase: true\n        ExcludePunctuation: true\n        RequireEachIncludedType: false\n        PasswordLength: 5\n",
    )
    .unwrap();
    assert_eq!(few.classes, [('d'..='z').collect::<Vec<char>>()]);
    assert!(!few.require_each_class);
    // A JSON secret (a template and a key) is not emulated; nor is nothing to draw from.
    let err = secret(
        "        SecretStringTemplate: '{\"user\": \"a\"}'\n        GenerateStringKey: password\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("CursorSecret.GenerateSecretString") && err.contains("SecretStringTemplate"),
        "{err}"
    );
    let err = secret("        ExcludeUppercase: true\n        ExcludeLowercase: true\n        ExcludeNumbers: true\n        ExcludePunctuation: true\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("every character is excluded"), "{err}");
}

/// The template with `setting` added to process's stream mapping.
fn with_mapping_setting(setting: &str) -> String {
    let at = "            BatchSize: 10\n            MaximumRetryAttempts: 5\n";
    let text = TEMPLATE.replacen(at, &format!("{at}            {setting}\n"), 1);
    assert_ne!(text, TEMPLATE);
    text
}

#[test]
fn every_setting_the_engine_does_not_emulate_is_refused_by_name() {
    for (setting, named) in [
        ("ParallelizationFactor: 4", "ParallelizationFactor: 4"),
        ("TumblingWindowInSeconds: 30", "TumblingWindowInSeconds: 30"),
        (
            "MaximumBatchingWindowInSeconds: 2",
            "MaximumBatchingWindowInSeconds: 2",
        ),
        (
            "StartingPositionTimestamp: 1700000000",
            "StartingPositionTimestamp",
        ),
        ("MetricsConfig: {Metrics: [EventCount]}", "MetricsConfig"),
        ("KmsKeyArn: arn:aws:kms:us-east-1:1:key/x", "KmsKeyArn"),
    ] {
        match parse(&with_mapping_setting(setting)) {
            Err(TemplateError::NotEmulated { at, setting: s, .. }) => {
                assert_eq!(at, "ProcessFunction.Uploads", "{setting}");
                assert!(s.contains(named), "{setting}: {s}");
            }
            other => panic!("{setting}: {other:?}"),
        }
    }
    // The values the engine does emulate pass.
    for setting in [
        "ParallelizationFactor: 1",
        "TumblingWindowInSeconds: 0",
        "MaximumBatchingWindowInSeconds: 0",
        "Enabled: true",
    ] {
        parse(&with_mapping_setting(setting)).unwrap_or_else(|e| panic!("{setting}: {e}"));
    }
    let latest = TEMPLATE.replacen(
        "StartingPosition: TRIM_HORIZON",
        "StartingPosition: LATEST",
        1,
    );
    let err = parse(&latest).unwrap_err().to_string();
    assert!(err.contains("StartingPosition: LATEST"), "{err}");
    let scheduled = TEMPLATE.replacen(
        "        Failures:\n          Type: SQS\n",
        "        Failures:\n          Type: Schedule\n",
        1,
    );
    assert_ne!(scheduled, TEMPLATE);
    let err = parse(&scheduled).unwrap_err().to_string();
    assert!(
        err.contains("FailuresFunction.Failures") && err.contains("Type: Schedule"),
        "{err}"
    );
    let sns_destination = TEMPLATE.replacen(
        "                Type: SQS\n                Destination: !GetAtt FailureQueue.Arn",
        "                Type: SNS\n                Destination: !Ref NoticeTopic",
        1,
    );
    let err = parse(&sns_destination).unwrap_err().to_string();
    assert!(
        err.contains("DestinationConfig.OnFailure.Type: SNS"),
        "{err}"
    );
    let scaling = TEMPLATE.replacen(
        "            BatchSize: 10\n            FunctionResponseTypes: [ReportBatchItemFailures]\n\nOutputs:",
        "            BatchSize: 10\n            FunctionResponseTypes: [ReportBatchItemFailures]\n            ScalingConfig: {MaximumConcurrency: 2}\n\nOutputs:",
        1,
    );
    assert_ne!(scaling, TEMPLATE);
    let err = parse(&scaling).unwrap_err().to_string();
    assert!(
        err.contains("FailuresFunction.Failures") && err.contains("ScalingConfig"),
        "{err}"
    );
    let on_success = TEMPLATE.replacen(
        "        DestinationConfig:\n          OnFailure:",
        "        DestinationConfig:\n          OnSuccess:\n            Type: SQS\n            Destination: !GetAtt FailureQueue.Arn\n          OnFailure:",
        1,
    );
    assert_ne!(on_success, TEMPLATE);
    let err = parse(&on_success).unwrap_err().to_string();
    assert!(
        err.contains("IngestFunction.EventInvokeConfig") && err.contains("OnSuccess"),
        "{err}"
    );
}

#[test]
fn an_unknown_parameter_override_is_refused() {
    let overrides = BTreeMap::from([("MaxPixel".to_owned(), "1".to_owned())]);
    let err = Template::parse(TEMPLATE, &overrides)
        .unwrap_err()
        .to_string();
    assert!(err.contains("MaxPixel is not a parameter"), "{err}");
}

#[test]
fn a_subscription_resource_names_its_topic_condition_and_delivery_policy() {
    let t = parse(TEMPLATE).unwrap();
    let Some(Resource::Subscription(s)) = t.resources.get("WebhookSubscription") else {
        panic!("WebhookSubscription is not read as a subscription");
    };
    assert_eq!(s.topic, "NoticeTopic");
    assert_eq!(s.subscription.protocol, "https");
    assert_eq!(s.subscription.endpoint, Expr::Ref("WebhookUrl".into()));
    assert_eq!(s.condition.as_deref(), Some("WebhookGiven"));
    assert_eq!(s.delivery_policy, None);
    assert_eq!(s.dead_letters.as_deref(), Some("WebhookDeadLetters"));
    // Off by default, on once the parameter is given.
    assert!(!t.condition("WebhookGiven", &Here).unwrap());
    let given = Template::parse(
        TEMPLATE,
        &BTreeMap::from([(
            "WebhookUrl".to_owned(),
            "http://127.0.0.1:9/hook".to_owned(),
        )]),
    )
    .unwrap();
    assert!(given.condition("WebhookGiven", &Here).unwrap());

    let with_policy = TEMPLATE.replace(
        "      Endpoint: !Ref WebhookUrl\n",
        "      Endpoint: !Ref WebhookUrl\n      DeliveryPolicy:\n        healthyRetryPolicy:\n          numRetries: 2\n",
    );
    let t = parse(&with_policy).unwrap();
    let Some(Resource::Subscription(s)) = t.resources.get("WebhookSubscription") else {
        panic!("WebhookSubscription is not read as a subscription");
    };
    assert_eq!(
        s.delivery_policy.as_deref(),
        Some(r#"{"healthyRetryPolicy":{"numRetries":2}}"#)
    );

    let unknown = TEMPLATE.replace(
        "      Endpoint: !Ref WebhookUrl\n",
        "      Endpoint: !Ref WebhookUrl\n      FilterPolicy: {}\n",
    );
    let err = parse(&unknown).unwrap_err().to_string();
    assert!(
        err.contains("WebhookSubscription") && err.contains("FilterPolicy"),
        "{err}"
    );
}
