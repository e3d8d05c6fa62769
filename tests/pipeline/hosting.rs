//! The engine hosts whatever template.yaml declares: a function added to a copy of the template
//! runs with its handler registered and no engine change, and a setting the engine cannot
//! emulate, a function without a handler or an event its handler does not take stop it at
//! start-up, by name. A variable that names what the engine does not host (the CDN) is left
//! unset and said so; a function that cannot do without it is refused, saying why.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use event_source_mapping::{FunctionError, StreamFunction};
use local_engine::{Engine, EngineConfig, Handler};

use crate::helpers::{fixture, spawn_engine_with};

/// A sixth function: on every new `uploaded` item, as `process` is, with a filter of its own.
const AUDIT: &str = r#"
  AuditFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: audit
    Properties:
      CodeUri: .
      MemorySize: 128
      Environment:
        Variables:
          AUDIT_LABEL: !Sub "${Renditions}|${AWS::Region}"
      Events:
        NewItems:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt ImagesTable.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 5
            FilterCriteria:
              Filters:
                - Pattern: '{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["uploaded"]}}}}'
"#;

/// `local::TEMPLATE` with `extra` added to its Resources.
fn template_with(extra: &str) -> String {
    local::TEMPLATE.replacen("\nResources:\n", &format!("\nResources:\n{extra}"), 1)
}

/// What the audit function saw: the ids of the items, and its configuration.
#[derive(Default)]
struct Audit {
    ids: Mutex<Vec<String>>,
    label: String,
    memory: String,
}

#[async_trait]
impl StreamFunction for Audit {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, FunctionError> {
        let mut ids = self.ids.lock().unwrap();
        for record in &event.records {
            let item = state::stream::item_of(record)
                .map_err(|e| FunctionError::new("Audit", e.to_string()))?;
            ids.push(item.id.to_string());
        }
        Ok(DynamoDbEventResponse::default())
    }
}

#[tokio::test]
async fn a_function_added_to_the_template_runs_with_its_handler_registered() {
    let seen: Arc<Mutex<Option<Arc<Audit>>>> = Default::default();
    let registered = seen.clone();
    let app = spawn_engine_with(move |cfg| {
        cfg.template = template_with(AUDIT);
        cfg.functions.register("audit", move |vars, _resources| {
            let registered = registered.clone();
            async move {
                let audit = Arc::new(Audit {
                    label: vars.required("AUDIT_LABEL")?,
                    memory: vars.required("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")?,
                    ..Default::default()
                });
                *registered.lock().unwrap() = Some(audit.clone());
                Ok(Handler::Stream(audit))
            }
        });
    })
    .await;
    let id = app.upload_ok(fixture("FreshFlower.jpg")).await;
    app.drain().await;
    let audit = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the audit function was built");
    // Its environment, resolved from the template, and what Lambda sets beside it.
    assert!(
        audit.label.starts_with(
            sam_template::Template::parse(local::TEMPLATE, &Default::default())
                .unwrap()
                .parameters["Renditions"]
                .as_str()
        ),
        "{}",
        audit.label
    );
    assert_eq!(audit.memory, "128");
    // It saw the new item once (its INSERT), never the pipeline's later writes.
    assert_eq!(*audit.ids.lock().unwrap(), std::slice::from_ref(&id));
    assert_eq!(app.metric("pipeline_invocations_total", "audit").await, 1.0);
    assert_eq!(
        app.metric("pipeline_records_filtered_total", "audit").await,
        2.0,
        "processed and notified"
    );
    // The pipeline is untouched by it.
    assert_eq!(app.item(&id).await["status"], "notified");
}

async fn open(template: String) -> Result<Engine, local_engine::EngineError> {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: EngineConfig = local::engine_config(dir.path());
    cfg.template = template;
    Engine::open(cfg).await
}

#[tokio::test]
async fn a_setting_the_engine_does_not_emulate_is_refused_by_name_at_start_up() {
    let mapping = "            BatchSize: 10\n            MaximumRetryAttempts: 5\n";
    for (setting, named) in [
        ("ParallelizationFactor: 2", "ParallelizationFactor: 2"),
        ("TumblingWindowInSeconds: 60", "TumblingWindowInSeconds: 60"),
        (
            "MaximumBatchingWindowInSeconds: 5",
            "MaximumBatchingWindowInSeconds: 5",
        ),
        ("KmsKeyArn: arn:aws:kms:x", "KmsKeyArn"),
    ] {
        let template =
            local::TEMPLATE.replacen(mapping, &format!("{mapping}            {setting}\n"), 1);
        assert_ne!(template, local::TEMPLATE, "{setting}");
        let err = open(template).await.err().expect(setting).to_string();
        assert!(
            err.contains("ProcessFunction.Uploads") && err.contains(named),
            "{setting}: {err}"
        );
    }
    // An event type the engine does not run.
    let scheduled = template_with(&AUDIT.replace("Type: DynamoDB", "Type: Schedule"));
    let err = open(scheduled).await.err().unwrap().to_string();
    assert!(
        err.contains("AuditFunction.NewItems") && err.contains("Schedule"),
        "{err}"
    );
}

#[tokio::test]
async fn a_function_without_a_handler_or_of_the_wrong_kind_is_refused() {
    let err = open(template_with(AUDIT)).await.err().unwrap().to_string();
    assert!(
        err.contains("AuditFunction")
            && err.contains("no handler is registered for binary `audit`"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = local::engine_config(dir.path());
    // `upload` is an API function: it cannot take a stream's batches.
    let upload_on_a_stream = AUDIT.replace("Binary: audit", "Binary: upload").replace(
        "          AUDIT_LABEL:",
        "          BUCKET_NAME: !Sub \"${AWS::StackName}-images-${AWS::AccountId}-${AWS::Region}\"\n          CURSOR_KEY: !Sub \"{{resolve:secretsmanager:${CursorSecret}:SecretString}}\"\n          AUDIT_LABEL:",
    );
    cfg.template = template_with(&upload_on_a_stream);
    let err = Engine::open(cfg).await.err().unwrap().to_string();
    assert!(
        err.contains("AuditFunction.NewItems") && err.contains("a DynamoDB event"),
        "{err}"
    );
}

#[tokio::test]
async fn the_cdn_is_left_unset_and_said_so_and_the_cursor_key_is_the_engines_own_secret() {
    let unset = |engine: &Engine| -> Vec<String> {
        engine
            .unset()
            .iter()
            .map(|(function, unset)| format!("{function}.{unset}"))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(local::engine_config(dir.path()))
        .await
        .unwrap();
    assert_eq!(
        unset(&engine),
        [
            "UploadFunction.CDN_KEY_PAIR_ID (it names RenditionsPublicKey (AWS::CloudFront::PublicKey))",
            "UploadFunction.CDN_URL (it names RenditionsCdn (AWS::CloudFront::Distribution))",
            "NoticeFunction.CDN_KEY_PAIR_ID (it names RenditionsPublicKey (AWS::CloudFront::PublicKey))",
            "NoticeFunction.CDN_URL (it names RenditionsCdn (AWS::CloudFront::Distribution))",
        ]
    );
    // The template's generated secret, kept in the data dir as GenerateSecretString says: 48
    // letters and digits, the same after a restart.
    let kept = std::fs::read_to_string(dir.path().join("secrets/CursorSecret")).unwrap();
    assert_eq!(kept.len(), 48);
    assert!(kept.chars().all(|c| c.is_ascii_alphanumeric()), "{kept}");
    drop(engine);
    let mut cfg = local::engine_config(dir.path());
    // Public renditions: the key's !If gives "", so only the distribution is left unset.
    cfg.parameters
        .insert("RenditionAccess".into(), "public".into());
    let engine = Engine::open(cfg).await.unwrap();
    assert_eq!(
        unset(&engine),
        [
            "UploadFunction.CDN_URL (it names RenditionsCdn (AWS::CloudFront::Distribution))",
            "NoticeFunction.CDN_URL (it names RenditionsCdn (AWS::CloudFront::Distribution))",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("secrets/CursorSecret")).unwrap(),
        kept
    );
}

#[tokio::test]
async fn a_function_that_needs_what_the_engine_does_not_host_is_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = local::engine_config(dir.path());
    let needs_the_cdn = AUDIT.replace(
        "          AUDIT_LABEL:",
        "          AUDIT_CDN: !Sub \"https://${RenditionsCdn.DomainName}\"\n          AUDIT_LABEL:",
    );
    cfg.template = template_with(&needs_the_cdn);
    cfg.functions
        .register("audit", |vars, _resources| async move {
            vars.required("AUDIT_CDN")?;
            Ok(Handler::Stream(Arc::new(Audit::default())))
        });
    let err = Engine::open(cfg).await.err().unwrap().to_string();
    assert!(
        err.starts_with("AuditFunction: its configuration: AUDIT_CDN is not set")
            && err.contains("RenditionsCdn (AWS::CloudFront::Distribution)")
            && err.contains("hosts no such resource"),
        "{err}"
    );
}
