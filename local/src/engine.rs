//! Wiring: the same handlers over the embedded adapters (or the AWS ones), with the routes and
//! event source mappings of template.yaml.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use embedded_adapters::files::FileStore;
use embedded_adapters::mailbox::Mailbox;
use embedded_adapters::sqlite::{Database, Durability, SqliteStream, SqliteTable};
use event_source_mapping::{Dispatcher, FunctionError, Observer, Step, StreamFunction};
use lambda_runtime::LambdaEvent;
use state::{ItemTable, Notifier, ObjectStore};
use tokio::sync::{watch, Mutex};

use crate::faults::{CrashPoint, Faults, FaultyNotifier, FaultyStore, FaultyTable};
use crate::metrics::Metrics;
use crate::template::{self, Template};
use crate::EngineError;

pub const BUCKET: &str = "images";

/// Where the table, bucket and topic are.
#[derive(Clone, Default)]
pub enum Backend {
    /// SQLite, files and a mailbox under the data dir.
    #[default]
    Embedded,
    /// DynamoDB (and its stream), S3 and SNS through the AWS SDK; the data dir keeps only the
    /// mappings' checkpoints, the stream mirror and dead letters.
    #[cfg(feature = "aws")]
    Aws(crate::aws_backend::AwsBackend),
}

/// How the engine runs. `from_env`-style defaults live in the CLI.
#[derive(Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Where the email subscription's mail is addressed.
    pub email: String,
    /// template.yaml's text; the engine's own copy unless a path is given.
    pub template: String,
    /// Parameter overrides, as `sam deploy --parameter-overrides`.
    pub parameters: BTreeMap<String, String>,
    /// First pause before a failed batch is retried; doubles per attempt.
    pub retry_backoff: Duration,
    pub backend: Backend,
    /// Injected failures (tests, crash drills); none by default.
    pub faults: Faults,
    pub durability: Durability,
    /// The process function's memory in MB, instead of its `MemorySize` in the template: the
    /// images in flight share it (imaging::budget).
    pub process_memory_mb: Option<u64>,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            email: "you@example.com".into(),
            template: template::EMBEDDED.to_owned(),
            parameters: BTreeMap::new(),
            retry_backoff: Duration::from_millis(200),
            backend: Backend::Embedded,
            faults: Faults::default(),
            durability: Durability::default(),
            process_memory_mb: None,
        }
    }
}

pub struct Engine {
    pub db: Database,
    /// The local stream: the embedded table's own, or DynamoDB's mirrored into it.
    pub stream: SqliteStream,
    pub table: Arc<dyn ItemTable>,
    pub store: Arc<dyn ObjectStore>,
    pub notifier: Arc<dyn Notifier>,
    /// The embedded topic's mail folder; `None` on AWS.
    pub mail_dir: Option<PathBuf>,
    /// Mirrors the DynamoDB stream into `db` on AWS; `None` when embedded.
    #[cfg(feature = "aws")]
    pub mirror: Option<Arc<crate::aws_backend::Mirror>>,
    pub metrics: Metrics,
    pub upload: Arc<upload::Deps>,
    pub routes: Vec<template::Route>,
    pub dispatchers: Vec<Arc<Mutex<Dispatcher>>>,
    /// Each mapping's function, by mapping name, for redriving its dead letters.
    targets: HashMap<String, Arc<dyn StreamFunction>>,
    data_dir: PathBuf,
}

/// What a redrive did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Redrive {
    pub redriven: usize,
    /// Dead letters that failed again, with why; they stay.
    pub still_failing: Vec<(i64, String)>,
}

/// The `process` function, invoked in process with the event Lambda would send.
struct ProcessFunction(process::Deps);
/// The `notice` function, likewise.
struct NoticeFunction(notice::Deps);

fn lambda_event(event: Event) -> LambdaEvent<Event> {
    LambdaEvent::new(event, lambda_runtime::Context::default())
}

#[async_trait]
impl StreamFunction for ProcessFunction {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, FunctionError> {
        process::handle(lambda_event(event), &self.0)
            .await
            .map_err(|e| FunctionError::new("ProcessError", e.to_string()))
    }
}

#[async_trait]
impl StreamFunction for NoticeFunction {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, FunctionError> {
        notice::handle(lambda_event(event), &self.0)
            .await
            .map_err(|e| FunctionError::new("NoticeError", e.to_string()))
    }
}

/// What the dispatchers report goes to `/metrics`; the crash drill's checkpoint point fires here.
struct MappingObserver {
    metrics: Metrics,
    faults: Faults,
}

impl Observer for MappingObserver {
    fn invoked(&self, function: &str, records: usize, iterator_age_s: f64) {
        let m = &self.metrics;
        m.invocations.with_label_values(&[function]).inc();
        m.records_delivered
            .with_label_values(&[function])
            .inc_by(records as u64);
        m.iterator_age
            .with_label_values(&[function])
            .set(iterator_age_s);
    }

    fn duration(&self, function: &str, seconds: f64) {
        self.metrics
            .duration
            .with_label_values(&[function])
            .observe(seconds);
    }

    fn error(&self, function: &str) {
        self.metrics.errors.with_label_values(&[function]).inc();
    }

    fn filtered(&self, function: &str, records: usize) {
        self.metrics
            .records_filtered
            .with_label_values(&[function])
            .inc_by(records as u64);
    }

    fn dead_lettered(&self, function: &str, records: usize) {
        self.metrics
            .dead_letters
            .with_label_values(&[function])
            .inc_by(records as u64);
    }

    fn before_checkpoint(&self) {
        self.faults.crash_point(CrashPoint::BeforeCheckpoint);
    }
}

fn concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

type Ports = (
    Arc<dyn ItemTable>,
    Arc<dyn ObjectStore>,
    Arc<dyn Notifier>,
    Option<PathBuf>,
);

impl Engine {
    pub fn open(cfg: EngineConfig) -> Result<Engine, EngineError> {
        let template = Template::parse(&cfg.template, &cfg.parameters)?;
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        let db = Database::open_with(&cfg.data_dir.join("pipeline.db"), cfg.durability)?;
        let fsync = cfg.durability == Durability::Power;
        #[cfg(feature = "aws")]
        let mut mirror = None;
        let (table, store, notifier, mail_dir): Ports = match cfg.backend {
            Backend::Embedded => {
                let mail_dir = cfg.data_dir.join("mail");
                (
                    Arc::new(SqliteTable::new(db.clone())),
                    Arc::new(FileStore::new(&cfg.data_dir.join("objects"), BUCKET, fsync)),
                    Arc::new(Mailbox::new(
                        db.clone(),
                        mail_dir.clone(),
                        &cfg.email,
                        fsync,
                    )?),
                    Some(mail_dir),
                )
            }
            #[cfg(feature = "aws")]
            Backend::Aws(aws) => {
                mirror = Some(Arc::new(crate::aws_backend::Mirror::new(
                    aws.reader,
                    db.clone(),
                )));
                (
                    Arc::new(aws.table),
                    Arc::new(aws.store),
                    Arc::new(aws.notifier),
                    None,
                )
            }
        };
        // Every port goes through the fault switches; with none set they only pass calls on.
        let faults = cfg.faults.clone();
        let table: Arc<dyn ItemTable> = Arc::new(FaultyTable {
            inner: table,
            faults: faults.clone(),
        });
        let store: Arc<dyn ObjectStore> = Arc::new(FaultyStore {
            inner: store,
            faults: faults.clone(),
        });
        let notifier: Arc<dyn Notifier> = Arc::new(FaultyNotifier {
            inner: notifier,
            faults: faults.clone(),
        });
        let metrics = Metrics::new();

        let function = |binary: &str| {
            template
                .function(binary)
                .ok_or_else(|| EngineError::Template(format!("no function with Binary: {binary}")))
        };
        let env = |f: &template::Function, key: &str| f.environment.get(key).cloned();

        let upload_fn = function("upload")?;
        let max_upload_bytes = match env(upload_fn, "MAX_UPLOAD_BYTES") {
            Some(v) => v
                .parse()
                .map_err(|_| EngineError::Template(format!("MAX_UPLOAD_BYTES {v:?}")))?,
            None => upload::DEFAULT_MAX_UPLOAD_BYTES,
        };
        let upload = Arc::new(upload::Deps {
            table: table.clone(),
            store: store.clone(),
            max_upload_bytes,
        });

        let process_fn = function("process")?;
        let settings = imaging::Settings::parse(
            &env(process_fn, "RENDITIONS")
                .unwrap_or_else(|| imaging::settings::DEFAULT_RENDITIONS.into()),
            match env(process_fn, "MAX_PIXELS") {
                Some(v) => v
                    .parse()
                    .map_err(|_| EngineError::Template(format!("MAX_PIXELS {v:?}")))?,
                None => imaging::settings::DEFAULT_MAX_PIXELS,
            },
        )
        .map_err(|e| EngineError::Template(e.to_string()))?;
        let memory = imaging::MemoryPlan::for_function(
            cfg.process_memory_mb
                .or(process_fn.memory_size)
                .unwrap_or(imaging::budget::DEFAULT_FUNCTION_MEMORY_MB),
        )
        .map_err(|e| EngineError::Template(e.to_string()))?;
        let process: Arc<dyn StreamFunction> = Arc::new(ProcessFunction(process::Deps {
            table: table.clone(),
            store: store.clone(),
            settings: Arc::new(settings.with_memory(&memory)),
            concurrency: concurrency(),
            memory: Arc::new(process::MemoryPool::new(&memory)),
        }));
        let notice_fn = function("notice")?;
        let notice: Arc<dyn StreamFunction> = Arc::new(NoticeFunction(notice::Deps {
            table: table.clone(),
            notifier: notifier.clone(),
            concurrency: 8,
        }));

        let stream = SqliteStream::new(db.clone());
        let observer: Arc<dyn Observer> = Arc::new(MappingObserver {
            metrics: metrics.clone(),
            faults: faults.clone(),
        });
        let mut dispatchers = Vec::new();
        let mut targets = HashMap::new();
        for (f, target) in [(process_fn, process), (notice_fn, notice)] {
            let mapping = f.stream.as_ref().ok_or_else(|| {
                EngineError::Template(format!("{}: no DynamoDB event", f.logical_id))
            })?;
            targets.insert(mapping.name.clone(), target.clone());
            metrics.register_function(&f.binary);
            dispatchers.push(Arc::new(Mutex::new(Dispatcher::new(
                f.binary.clone(),
                Arc::new(mapping.clone()),
                Arc::new(stream.clone()),
                Arc::new(stream.clone()),
                target,
                observer.clone(),
                cfg.retry_backoff,
            ))));
        }
        Ok(Engine {
            db,
            stream,
            table,
            store,
            notifier,
            mail_dir,
            #[cfg(feature = "aws")]
            mirror,
            metrics,
            upload,
            routes: upload_fn.routes.clone(),
            dispatchers,
            targets,
            data_dir: cfg.data_dir,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn router(&self) -> anyhow::Result<axum::Router> {
        crate::http::router(self.upload.clone(), &self.routes, self.metrics.clone())
    }

    /// Reads what DynamoDB Streams has that the mirror does not (AWS backend); 0 when embedded.
    async fn poll_mirror(&self) -> anyhow::Result<usize> {
        #[cfg(feature = "aws")]
        if let Some(mirror) = &self.mirror {
            return mirror.poll().await;
        }
        Ok(0)
    }

    /// Delivers every pending record to every mapping until none has work left (tests, `process`
    /// of a replayed stream). Retries pause as they would in `serve`.
    pub async fn drain(&self) -> anyhow::Result<()> {
        loop {
            let mut idle = self.poll_mirror().await? == 0;
            for d in &self.dispatchers {
                let mut d = d.lock().await;
                loop {
                    match d.step().await? {
                        Step::Idle => break,
                        Step::Progressed => idle = false,
                        Step::Retrying(pause) => {
                            idle = false;
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
            }
            if idle {
                return Ok(());
            }
        }
    }

    /// Feeds every dead letter back to its mapping's function, one record per invocation (as an
    /// SQS redrive to the source would), and removes the ones that now succeed.
    pub async fn redrive(&self) -> anyhow::Result<Redrive> {
        let mut report = Redrive::default();
        for letter in self.stream.dead_letters().await? {
            let Some(target) = self.targets.get(&letter.mapping) else {
                report.still_failing.push((
                    letter.id,
                    format!("no mapping {} in the template", letter.mapping),
                ));
                continue;
            };
            let outcome = match serde_json::from_value::<EventRecord>(letter.record.clone()) {
                Err(e) => Err(format!("not a DynamoDB stream record: {e}")),
                Ok(record) => {
                    let mut event = Event::default();
                    event.records = vec![record];
                    match target.invoke(event).await {
                        Ok(response) if response.batch_item_failures.is_empty() => Ok(()),
                        Ok(_) => Err("the function reported the record as failed".to_owned()),
                        Err(error) => Err(format!("function error: {error}")),
                    }
                }
            };
            match outcome {
                Ok(()) => {
                    self.stream.remove_dead_letter(letter.id).await?;
                    report.redriven += 1;
                }
                Err(why) => report.still_failing.push((letter.id, why)),
            }
        }
        Ok(report)
    }

    /// Serves the API on `addr` (loopback only) and runs every mapping until `stop` turns true.
    pub async fn serve(
        self,
        addr: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        if !addr.ip().is_loopback() {
            return Err(EngineError::NotLoopback(addr));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr().context("local address")?;
        let router = self.router()?;
        let mut tasks = Vec::new();
        for d in &self.dispatchers {
            let d = d.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move { run_shared(d, stop).await }));
        }
        #[cfg(feature = "aws")]
        if let Some(mirror) = self.mirror.clone() {
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move { tail(mirror, stop).await }));
        }
        tracing::info!(%addr, data_dir = %self.data_dir.display(), "serving");
        println!("Upload API listening on http://{addr}");
        match &self.mail_dir {
            Some(mail) => println!(
                "Data in {} (mail in {})",
                self.data_dir.display(),
                mail.display()
            ),
            None => println!(
                "Table, bucket and topic on AWS; checkpoints in {}",
                self.data_dir.display()
            ),
        }
        println!("Try:\n  curl -X POST -H 'Content-type: image/jpeg' --data-binary '@sample.jpg' http://{addr}/upload");
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        server.await.context("serving HTTP")?;
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// Polls the DynamoDB stream as Lambda's pollers do, four times a second per shard at most.
#[cfg(feature = "aws")]
async fn tail(mirror: Arc<crate::aws_backend::Mirror>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = mirror.poll().await {
            tracing::error!(error = %format!("{e:#}"), "reading the DynamoDB stream failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// A dispatcher's loop, holding its lock only while it steps so `drain` can interleave.
async fn run_shared(d: Arc<Mutex<Dispatcher>>, mut stop: watch::Receiver<bool>) {
    let mut changes = d.lock().await.source().subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        changes.borrow_and_update();
        let result = d.lock().await.step().await;
        let pause = match result {
            Ok(Step::Progressed) => continue,
            Ok(Step::Retrying(pause)) => pause,
            Ok(Step::Idle) => {
                tokio::select! {
                    _ = changes.changed() => continue,
                    _ = stop.changed() => return,
                    // Another process (the CLI's replay) may have moved a checkpoint.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "dispatcher step failed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
}
