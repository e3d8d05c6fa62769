//! Each function's binary run as Lambda runs it: started with AWS_LAMBDA_RUNTIME_API pointing at a
//! Runtime API served here, it pulls events from `/invocation/next` and posts its answer back. The
//! functions reach DynamoDB Local and moto through the standard AWS_ENDPOINT_URL_* variables; the
//! process and notice events are the records the real stream produced.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_adapters::streams::StreamReader;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use embedded_adapters::sqlite::{Database, SqliteStream};
use event_source_mapping::{RecordSource, SourceRecord};
use local::TEMPLATE as EMBEDDED;
use local_engine::backend::aws::Mirror;
use sam_template::Template;
use serde_json::{json, Value};
use state::{ImageId, ItemTable, Status};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::stand_ins::{endpoints, AwsWorld};

type Answer = Result<Value, Value>;
/// Invocations waiting for the function to ask for them: (request id, event).
type Queue = mpsc::Receiver<(String, Value)>;

#[derive(Clone, Default)]
struct Runtime {
    queue: Arc<Mutex<Option<Queue>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>,
}

async fn next(State(rt): State<Runtime>) -> (HeaderMap, String) {
    let mut queue = rt.queue.lock().await;
    let (id, event) = queue.as_mut().unwrap().recv().await.expect("harness open");
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
    let deadline = state::now_ms() + 30_000;
    headers.insert(
        "lambda-runtime-deadline-ms",
        deadline.to_string().parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:test"
            .parse()
            .unwrap(),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".parse().unwrap(),
    );
    (headers, event.to_string())
}

async fn answer(rt: &Runtime, id: &str, answer: Answer) -> StatusCode {
    match rt.waiting.lock().await.remove(id) {
        Some(tx) => {
            let _ = tx.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn response(
    State(rt): State<Runtime>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    answer(
        &rt,
        &id,
        Ok(serde_json::from_str(&body).unwrap_or(Value::String(body))),
    )
    .await
}

async fn error(
    State(rt): State<Runtime>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    answer(
        &rt,
        &id,
        Err(serde_json::from_str(&body).unwrap_or(Value::String(body))),
    )
    .await
}

async fn init_error(body: String) -> StatusCode {
    panic!("the function failed to start: {body}");
}

/// One function binary under a Runtime API of its own.
struct Function {
    child: Child,
    submit: mpsc::Sender<(String, Value)>,
    rt: Runtime,
    /// The lines the function writes to stdout (its log on Lambda), as they come.
    stdout: Mutex<mpsc::UnboundedReceiver<String>>,
}

/// The CloudWatch namespace the bootstraps are given (the template gives the stack's name).
const METRICS_NAMESPACE: &str = "image-pipeline-test";

fn binary(name: &str) -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_uploader")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

impl Function {
    async fn start(name: &str, env: &[(String, String)]) -> Function {
        let (submit, queue) = mpsc::channel(8);
        let rt = Runtime {
            queue: Arc::new(Mutex::new(Some(queue))),
            ..Default::default()
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(rt.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut child = Command::new(binary(name))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().cloned())
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("METRICS_NAMESPACE", METRICS_NAMESPACE)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (lines, stdout) = mpsc::unbounded_channel();
        let out = child.stdout.take().unwrap();
        let echo = std::env::var_os("TEST_LOG").is_some();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("{line}");
                }
                let _ = lines.send(line);
            }
        });
        Function {
            child,
            submit,
            rt,
            stdout: Mutex::new(stdout),
        }
    }

    /// The next EMF document of the function's stdout that carries `metric`: CloudWatch Logs
    /// turns such a line into metrics. The runtime writes it when an invocation ends.
    async fn emf_with(&self, metric: &str) -> Value {
        let mut stdout = self.stdout.lock().await;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), stdout.recv())
                .await
                .unwrap_or_else(|_| panic!("no EMF document with {metric}"))
                .unwrap_or_else(|| panic!("stdout closed before an EMF document with {metric}"));
            let Ok(doc) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let Some(directives) = doc["_aws"]["CloudWatchMetrics"].as_array() else {
                continue;
            };
            if directives.iter().any(|d| {
                d["Metrics"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().any(|m| m["Name"] == metric))
            }) {
                assert_eq!(directives[0]["Namespace"], METRICS_NAMESPACE, "{line}");
                return doc;
            }
        }
    }

    async fn invoke(&self, event: Value) -> Answer {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.rt.waiting.lock().await.insert(id.clone(), tx);
        self.submit.send((id, event)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .expect("the function answered in time")
            .unwrap()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event_file(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_three_bootstraps_take_an_upload_to_notified_on_the_stand_ins() {
    let Some(eps) = endpoints() else {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    };
    let world = AwsWorld::create(eps).await;
    // CURSOR_KEY_SECRET names a secret on moto: the upload bootstrap reads it as it starts.
    let env = world.env();
    let upload = Function::start("upload", &env).await;
    let process = Function::start("process", &env).await;
    let notice = Function::start("notice", &env).await;

    // API Gateway -> upload.
    let resp = upload.invoke(event_file("api-upload.json")).await.unwrap();
    assert_eq!(resp["statusCode"], 201, "{resp}");
    let item: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    let id: ImageId = item["id"].as_str().unwrap().parse().unwrap();
    let refused = upload
        .invoke(event_file("api-upload-not-an-image.json"))
        .await
        .unwrap();
    assert_eq!(refused["statusCode"], 415, "{refused}");
    // API Gateway -> the page: its policy lets images and uploads reach the bucket's presigned
    // URLs (here moto's origin, on AWS https://<bucket>.s3.<region>.amazonaws.com).
    let page = upload
        .invoke(event_file("api-get-page.json"))
        .await
        .unwrap();
    assert_eq!(page["statusCode"], 200, "{page}");
    // A REST API proxy answer: lambda_http puts every header in multiValueHeaders.
    let header = |name: &str| {
        page["multiValueHeaders"][name][0]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    let csp = header("content-security-policy");
    let s3 = env
        .iter()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL_S3")
        .unwrap();
    let s3_origin = s3.1.trim_end_matches('/');
    assert!(
        csp.contains(&format!("img-src 'self' {s3_origin};"))
            && csp.contains(&format!("connect-src 'self' {s3_origin};")),
        "{csp}"
    );
    assert_eq!(page["body"], upload::page::PAGE);

    // The real stream, filtered by the template, -> process -> notice.
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("mirror.db")).unwrap();
    let arn = StreamReader::stream_arn_of(&world.ddb, &world.table)
        .await
        .unwrap();
    let mirror = Mirror::new(
        Arc::new(StreamReader::new(world.streams.clone(), arn)),
        db.clone(),
    );
    let stream = SqliteStream::new(db.clone());
    let template = Template::parse(EMBEDDED, &Default::default()).unwrap();
    let mut seen = 0;
    let batch_for = |binary: &'static str, records: &[SourceRecord]| {
        let filters = &template.mappings(binary)[0].filters;
        json!({ "Records": records.iter().filter(|r| filters.matches(&r.record)).map(|r| &r.record).collect::<Vec<_>>() })
    };
    mirror.poll().await.unwrap();
    let records = stream.read(seen, 100).await.unwrap();
    seen = records.last().unwrap().position;
    let event = batch_for("process", &records);
    assert_eq!(event["Records"].as_array().unwrap().len(), 1);
    let resp = process.invoke(event).await.unwrap();
    assert_eq!(resp, json!({ "batchItemFailures": [] }));
    // Its metrics, in the function's log as EMF.
    let emf = process.emf_with(pipeline_metrics::IMAGES_PROCESSED).await;
    assert_eq!(emf["function"], "process", "{emf}");
    assert_eq!(emf[pipeline_metrics::IMAGES_PROCESSED], 1, "{emf}");
    assert_eq!(emf[pipeline_metrics::COLD_STARTS], 1, "{emf}");
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["function"]]),
        "{emf}"
    );

    let table = aws_adapters::DynamoTable::new(world.ddb.clone(), &world.table);
    let processed = table.get(id).await.unwrap().unwrap();
    assert_eq!(processed.status, Status::Processed);
    let renditions = processed.renditions.clone().unwrap();
    for key in renditions.values() {
        let object = world
            .s3
            .get_object()
            .bucket(&world.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        assert!(object.content_length().unwrap() > 0, "{key}");
    }

    mirror.poll().await.unwrap();
    let records = stream.read(seen, 100).await.unwrap();
    let event = batch_for("notice", &records);
    assert_eq!(
        event["Records"].as_array().unwrap().len(),
        1,
        "only the uploaded -> processed record"
    );
    assert_eq!(
        batch_for("process", &records)["Records"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "process's own write is filtered"
    );
    let resp = notice.invoke(event).await.unwrap();
    assert_eq!(resp, json!({ "batchItemFailures": [] }));
    let emf = notice.emf_with(pipeline_metrics::NOTICES_PUBLISHED).await;
    assert_eq!(emf["function"], "notice", "{emf}");
    assert_eq!(emf[pipeline_metrics::NOTICES_PUBLISHED], 1, "{emf}");
    let notified = table.get(id).await.unwrap().unwrap();
    assert_eq!(notified.status, Status::Notified);
    let sent = world.take_notices().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(Some(&sent[0].2), notified.message_id.as_ref());

    // A malformed event is a function error with a type, not a crash: the runtime keeps serving.
    let err = process
        .invoke(json!({ "Records": "not a list" }))
        .await
        .unwrap_err();
    assert!(
        err["errorType"].is_string() && err["errorMessage"].is_string(),
        "{err}"
    );
    let again = process
        .invoke(event_file("stream-modify-notified.json"))
        .await
        .unwrap();
    assert_eq!(
        again,
        json!({ "batchItemFailures": [] }),
        "a record for an unknown item is not retried"
    );
}
