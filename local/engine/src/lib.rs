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
use aws_lambda_events::s3::S3Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use embedded_adapters::files::FileStore;
use embedded_adapters::mailbox::Mailbox;
use embedded_adapters::signed::UploadSigner;
use embedded_adapters::sqlite::{Database, Durability, SqliteStream, SqliteTable};
use event_source_mapping::async_invoke::{AsyncFunction, AsyncInvoker, AsyncStep};
use event_source_mapping::{Dispatcher, FunctionError, Observer, Step, StreamFunction};
use lambda_runtime::LambdaEvent;
use state::{ItemTable, Notifier, ObjectStore};
use tokio::sync::{watch, Mutex};

use crate::faults::{CrashPoint, Faults, FaultyNotifier, FaultyStore, FaultyTable};
use crate::metrics::Metrics;
use crate::notifications::BucketEvents;
use crate::server::ServerLimits;
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
    /// First pause before a failed batch is retried; doubles per attempt up to `max_retry_backoff`.
    pub retry_backoff: Duration,
    /// The longest pause between retries. With the defaults (2 s doubling, up to 60 s) a batch that
    /// keeps failing transiently is retried for about a minute before `process`'s
    /// MaximumRetryAttempts (5) sends it to dead letters, and about six for `notice`'s (10): long
    /// enough to outlast a burst (file descriptors or disk briefly short, a store restarting).
    pub max_retry_backoff: Duration,
    /// What an HTTP client may cost: timeouts, connections, buffered bytes.
    pub server: ServerLimits,
    pub backend: Backend,
    /// Injected failures (tests, crash drills); none by default.
    pub faults: Faults,
    pub durability: Durability,
    /// The process function's memory in MB, instead of its `MemorySize` in the template: the
    /// images in flight share it (imaging::budget).
    pub process_memory_mb: Option<u64>,
    /// Stream records the slowest mapping may have left to read before `POST` requests are
    /// refused with 503 (admission control, `crate::admission`; README, "Load").
    pub max_backlog: u64,
    /// Seconds of work the backlog may hold, at the rate the slowest mapping reads it, before
    /// `POST` requests are refused with 503.
    pub max_backlog_seconds: Duration,
}

/// Between about 700 uploads (three records each, once the engine is working them off) and 2000
/// (none processed yet): what a backlog may cost in disk and memory, whatever it holds.
pub const DEFAULT_MAX_BACKLOG: u64 = 2000;
/// A few seconds, so latency under overload stays in seconds whatever the images.
pub const DEFAULT_MAX_BACKLOG_SECONDS: Duration = Duration::from_secs(5);

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            email: "you@example.com".into(),
            template: template::EMBEDDED.to_owned(),
            parameters: BTreeMap::new(),
            retry_backoff: Duration::from_secs(2),
            max_retry_backoff: Duration::from_secs(60),
            server: ServerLimits::DEFAULT,
            backend: Backend::Embedded,
            faults: Faults::default(),
            durability: Durability::default(),
            process_memory_mb: None,
            max_backlog: DEFAULT_MAX_BACKLOG,
            max_backlog_seconds: DEFAULT_MAX_BACKLOG_SECONDS,
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
    /// The embedded bucket, which `GET /objects/...` serves; `None` on AWS.
    pub files: Option<Arc<FileStore>>,
    /// The embedded table, whose expired reservations the engine deletes; `None` on AWS.
    embedded_table: Option<SqliteTable>,
    /// Mirrors the DynamoDB stream into `db` on AWS; `None` when embedded.
    #[cfg(feature = "aws")]
    pub mirror: Option<Arc<crate::aws_backend::Mirror>>,
    /// The bucket's notifications routed to SQS, on AWS when configured.
    #[cfg(feature = "aws")]
    bucket_queue: Option<crate::aws_backend::BucketEventQueue>,
    pub metrics: Metrics,
    pub upload: Arc<upload::Deps>,
    pub routes: Vec<template::Route>,
    pub dispatchers: Vec<Arc<Mutex<Dispatcher>>>,
    /// The bucket's notification rules (template.yaml's `Type: S3` events) and their queues.
    pub bucket_events: Arc<BucketEvents>,
    /// One asynchronous invoker per function the bucket notifies (`ingest`).
    pub invokers: Vec<Arc<AsyncInvoker>>,
    /// Each mapping's function (`process`, `notice`, `ingest`), by mapping or queue name: who
    /// gave up on a dead letter.
    functions: HashMap<String, String>,
    data_dir: PathBuf,
    server: ServerLimits,
    faults: Faults,
    /// The stream mappings' names, whose slowest reader the backlog is measured from.
    stream_mappings: Arc<[String]>,
    max_backlog: u64,
    max_backlog_seconds: Duration,
}

/// What a redrive did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Redrive {
    /// Items whose stall mark was cleared: each is offered to its function again.
    pub redriven: usize,
    /// Dead letters whose items had already moved on (or are gone): nothing to redo.
    pub moved_on: usize,
}

/// The `ingest` function, invoked asynchronously with the S3 events the bucket sends.
struct IngestFunction(ingest::Deps);

#[async_trait]
impl AsyncFunction for IngestFunction {
    async fn invoke(&self, event: S3Event) -> Result<(), FunctionError> {
        ingest::handle(
            LambdaEvent::new(event, lambda_runtime::Context::default()),
            &self.0,
        )
        .await
        .map(|_| ())
        .map_err(|e| FunctionError::new("IngestError", e.to_string()))
    }
}

/// What a dead letter holds.
enum GivenUp {
    /// A table stream record (`process`, `notice`).
    Stream(Box<EventRecord>),
    /// A bucket notification (`ingest`): its key, and the reservation it is for, if any.
    Object {
        key: String,
        reservation: Option<state::ImageId>,
    },
    Unknown(String),
}

fn given_up(record: &serde_json::Value) -> GivenUp {
    if record.get("s3").is_some() {
        let key = record["s3"]["object"]["key"]
            .as_str()
            .map(ingest::decoded_key)
            .unwrap_or_default();
        let reservation = key
            .strip_prefix(ingest::INCOMING)
            .and_then(|id| id.parse().ok());
        return GivenUp::Object { key, reservation };
    }
    match serde_json::from_value::<EventRecord>(record.clone()) {
        Ok(r) => GivenUp::Stream(Box::new(r)),
        Err(e) => GivenUp::Unknown(format!("neither a stream record nor an object event: {e}")),
    }
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

/// How many records of a batch a stream function works on at once: as many as the machine has
/// cores, or at least `floor`, and every record of the mapping's batch. Each record's writes wait
/// for the database's next group commit, so records handled one after another would pay one
/// commit each; together, a batch's writes share one (on one core: 795 -> 1,104 tiny items/s).
/// Memory stays bounded by the process step's memory pool, whatever the count.
fn concurrency(floor: usize, f: &template::Function) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let batch = f.stream.as_ref().map_or(1, |m| m.batch_size);
    cores.max(floor).max(batch)
}

type Ports = (
    Arc<dyn ItemTable>,
    Arc<dyn ObjectStore>,
    Arc<dyn Notifier>,
    Option<PathBuf>,
    Option<Arc<FileStore>>,
    Option<SqliteTable>,
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
        #[cfg(feature = "aws")]
        let mut bucket_queue = None;
        let (table, store, notifier, mail_dir, files, embedded_table): Ports = match cfg.backend {
            Backend::Embedded => {
                let mail_dir = cfg.data_dir.join("mail");
                let signer = UploadSigner::new(&crate::secret::load_or_create(&cfg.data_dir)?);
                let files = Arc::new(
                    FileStore::new(&cfg.data_dir.join("objects"), BUCKET, fsync)
                        .with_signer(signer),
                );
                let sqlite = SqliteTable::new(db.clone());
                (
                    Arc::new(sqlite.clone()),
                    files.clone(),
                    Arc::new(Mailbox::new(
                        db.clone(),
                        mail_dir.clone(),
                        &cfg.email,
                        fsync,
                    )?),
                    Some(mail_dir),
                    Some(files),
                    Some(sqlite),
                )
            }
            #[cfg(feature = "aws")]
            Backend::Aws(aws) => {
                bucket_queue = aws.bucket_events;
                mirror = Some(Arc::new(crate::aws_backend::Mirror::new(
                    aws.reader,
                    db.clone(),
                )));
                (
                    Arc::new(aws.table),
                    Arc::new(aws.store),
                    Arc::new(aws.notifier),
                    None,
                    None,
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
        cfg.server
            .validate(max_upload_bytes)
            .map_err(EngineError::Limits)?;
        let secret = crate::secret::load_or_create(&cfg.data_dir)?;
        let max_object_bytes = match env(upload_fn, "MAX_OBJECT_BYTES") {
            Some(v) => v
                .parse()
                .map_err(|_| EngineError::Template(format!("MAX_OBJECT_BYTES {v:?}")))?,
            None => upload::DEFAULT_MAX_OBJECT_BYTES,
        };
        let upload_url_ttl = match env(upload_fn, "UPLOAD_URL_MINUTES") {
            Some(v) => Duration::from_secs(
                60 * v
                    .parse::<u64>()
                    .map_err(|_| EngineError::Template(format!("UPLOAD_URL_MINUTES {v:?}")))?,
            ),
            None => upload::DEFAULT_UPLOAD_URL_TTL,
        };
        let upload = Arc::new(upload::Deps {
            table: table.clone(),
            store: store.clone(),
            max_upload_bytes,
            max_object_bytes,
            upload_url_ttl,
            cursor_key: upload::CursorKey::new(secret).expect("a 32-byte key"),
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
            concurrency: concurrency(1, process_fn),
            memory: Arc::new(process::MemoryPool::new(&memory)),
        }));
        let notice_fn = function("notice")?;
        let notice: Arc<dyn StreamFunction> = Arc::new(NoticeFunction(notice::Deps {
            table: table.clone(),
            notifier: notifier.clone(),
            concurrency: concurrency(notice::CONCURRENCY, notice_fn),
        }));

        let stream = SqliteStream::new(db.clone());
        let observer: Arc<dyn Observer> = Arc::new(MappingObserver {
            metrics: metrics.clone(),
            faults: faults.clone(),
        });
        let mut dispatchers = Vec::new();
        let mut functions = HashMap::new();
        let mut stream_mappings = Vec::new();
        for (f, target) in [(process_fn, process), (notice_fn, notice)] {
            let mapping = f.stream.as_ref().ok_or_else(|| {
                EngineError::Template(format!("{}: no DynamoDB event", f.logical_id))
            })?;
            functions.insert(mapping.name.clone(), f.binary.clone());
            stream_mappings.push(mapping.name.clone());
            metrics.register_function(&f.binary);
            dispatchers.push(Arc::new(Mutex::new(
                Dispatcher::new(
                    f.binary.clone(),
                    Arc::new(mapping.clone()),
                    Arc::new(stream.clone()),
                    Arc::new(stream.clone()),
                    target,
                    observer.clone(),
                    cfg.retry_backoff,
                )
                .with_max_backoff(cfg.max_retry_backoff),
            )));
        }
        // The bucket's notifications: every function with `Type: S3` events (`ingest`), each with
        // its own queue, delivered as Lambda invokes asynchronously.
        let ingest_fn = function("ingest")?;
        let ingest: Arc<dyn AsyncFunction> = Arc::new(IngestFunction(ingest::Deps {
            table: table.clone(),
            store: store.clone(),
            max_object_bytes,
        }));
        let mut rules = Vec::new();
        let mut invokers = Vec::new();
        // (One function today; the bucket notifies whichever the template says.)
        let (f, target) = (ingest_fn, ingest);
        let config = f.async_config.clone();
        rules.extend(
            f.notifications
                .iter()
                .map(|rule| (rule.clone(), config.name.clone())),
        );
        functions.insert(config.name.clone(), f.binary.clone());
        metrics.register_function(&f.binary);
        invokers.push(Arc::new(AsyncInvoker::new(
            f.binary.clone(),
            Arc::new(config),
            Arc::new(db.clone()),
            target,
            observer.clone(),
            cfg.retry_backoff,
            cfg.max_retry_backoff,
        )));
        let bucket_events = Arc::new(BucketEvents::new(db.clone(), store.bucket(), rules));
        if cfg.max_backlog == 0 {
            return Err(EngineError::Limits(
                "max backlog must be at least 1 record".into(),
            ));
        }
        Ok(Engine {
            db,
            stream,
            table,
            store,
            notifier,
            mail_dir,
            files,
            embedded_table,
            #[cfg(feature = "aws")]
            mirror,
            #[cfg(feature = "aws")]
            bucket_queue,
            metrics,
            upload,
            routes: upload_fn.routes.clone(),
            dispatchers,
            bucket_events,
            invokers,
            functions,
            data_dir: cfg.data_dir,
            server: cfg.server,
            faults,
            stream_mappings: stream_mappings.into(),
            max_backlog: cfg.max_backlog,
            max_backlog_seconds: cfg.max_backlog_seconds,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The API's routes, with a byte budget of their own.
    pub fn router(&self) -> anyhow::Result<axum::Router> {
        crate::http::router(
            self.upload.clone(),
            &self.routes,
            self.metrics.clone(),
            self.files.clone().map(|files| crate::objects::Objects {
                files,
                events: self.bucket_events.clone(),
                faults: self.faults.clone(),
            }),
            crate::http::ByteBudget::new(self.server.max_buffered_bytes),
            crate::admission::Admission::new(
                self.stream.clone(),
                self.stream_mappings.clone(),
                self.max_backlog,
                self.max_backlog_seconds,
            ),
        )
    }

    /// Stream records the slowest mapping has not read yet: what admission control bounds. On AWS
    /// it counts what the mirror has copied so far (it polls four times a second).
    pub async fn backlog(&self) -> anyhow::Result<u64> {
        self.stream.backlog(&self.stream_mappings).await
    }

    /// Where the engine is reached (`http://127.0.0.1:3000`): links to objects start with it.
    pub fn set_public_url(&self, base: &str) {
        if let Some(files) = &self.files {
            files.set_public_url(base);
        }
    }

    /// Serves the API on `listener`, under the engine's [`ServerLimits`], until `stop` turns true
    /// (or its sender is dropped). The mappings do not run: see [`Engine::serve`].
    pub async fn serve_http(
        &self,
        listener: tokio::net::TcpListener,
        stop: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        crate::server::serve(listener, self.router()?, self.server, stop).await;
        Ok(())
    }

    /// Reads what DynamoDB Streams has that the mirror does not (AWS backend); 0 when embedded.
    /// Returns how many records it copied.
    pub async fn poll_mirror(&self) -> anyhow::Result<usize> {
        #[cfg(feature = "aws")]
        if let Some(mirror) = &self.mirror {
            return mirror.poll().await;
        }
        Ok(0)
    }

    /// An object was created in the bucket by other means than the engine's own PUT (an object
    /// put on S3 directly, which moto does not notify): queue its notifications, due now.
    pub async fn object_created(&self, key: &str, size: u64, etag: &str) -> anyhow::Result<usize> {
        let held = self.bucket_events.object_created(key, size, etag).await?;
        self.bucket_events.released(held).await
    }

    /// Releases or drops the bucket events an interrupted write left held for more than
    /// `held_for` (see [`BucketEvents::recover`]).
    pub async fn recover_bucket_events(&self, held_for: Duration) -> anyhow::Result<()> {
        let (released, dropped) = self
            .bucket_events
            .recover(self.store.as_ref(), held_for)
            .await?;
        if released + dropped > 0 {
            tracing::warn!(
                released,
                dropped,
                "bucket events held by an interrupted write recovered"
            );
        }
        Ok(())
    }

    /// Deletes the reservations whose TTL passed, as DynamoDB's TTL does (embedded table only;
    /// on AWS, DynamoDB does it). Returns how many.
    pub async fn expire_reservations(&self) -> anyhow::Result<usize> {
        self.expire_reservations_at(state::now_ms() / 1000).await
    }

    /// As [`Engine::expire_reservations`], as if it were `now_s` (epoch seconds).
    pub async fn expire_reservations_at(&self, now_s: i64) -> anyhow::Result<usize> {
        match &self.embedded_table {
            Some(table) => Ok(table.expire(now_s).await?),
            None => Ok(0),
        }
    }

    /// Delivers every pending record to every mapping until none has work left (tests, `process`
    /// of a replayed stream). Retries pause as they would in `serve`.
    pub async fn drain(&self) -> anyhow::Result<()> {
        loop {
            let mut idle = self.poll_mirror().await? == 0;
            idle &= self.consume_failures().await? == 0;
            idle &= self.expire_reservations().await? == 0;
            for invoker in &self.invokers {
                match invoker.step().await.map_err(|e| anyhow::anyhow!(e))? {
                    AsyncStep::Idle => {}
                    AsyncStep::Progressed => idle = false,
                    AsyncStep::Waiting(pause) => {
                        idle = false;
                        tokio::time::sleep(pause).await;
                    }
                }
            }
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

    /// The failure consumer: marks the item of every dead letter not yet consumed as stalled
    /// (when, which function, why), as the `failures` function does for the failure queue on AWS.
    /// A letter whose marking hits an outage stays for the next round. Returns how many it took.
    pub async fn consume_failures(&self) -> anyhow::Result<usize> {
        let letters = self.stream.unconsumed_dead_letters().await?;
        let mut consumed = 0;
        for letter in letters {
            let function = self
                .functions
                .get(&letter.mapping)
                .map_or(letter.mapping.as_str(), String::as_str);
            let marked = match given_up(&letter.record) {
                GivenUp::Stream(record) => {
                    state::stream::mark_given_up(
                        self.table.as_ref(),
                        &record,
                        function,
                        &letter.reason,
                    )
                    .await
                }
                // An object event ingest gave up on: its reservation, if it is one, says so.
                GivenUp::Object {
                    reservation: Some(id),
                    ..
                } => {
                    let stall = state::Stall::new(function, &letter.reason, state::now_ms());
                    self.table
                        .mark_stalled(id, state::Status::Pending, &stall)
                        .await
                }
                GivenUp::Object {
                    reservation: None,
                    key,
                } => {
                    tracing::error!(key, reason = %letter.reason, "a drop-in was given up on: redrive it after fixing the cause");
                    Ok(false)
                }
                GivenUp::Unknown(why) => Err(state::StateError::Corrupt {
                    id: String::new(),
                    reason: format!("dead letter {}: {why}", letter.id),
                }),
            };
            match marked {
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, letter = letter.id, "marking a stalled item failed; will retry");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, letter = letter.id, "dead letter names no item")
                }
                Ok(_) => {}
            }
            self.stream.consumed_dead_letter(letter.id).await?;
            consumed += 1;
        }
        Ok(consumed)
    }

    /// Redrives every dead letter: its item's stall mark is cleared, and that write offers the
    /// item to its function again through the stream (the running engine, or the next start,
    /// delivers it; if it fails again it is dead-lettered and marked again). The letters go.
    pub async fn redrive(&self) -> anyhow::Result<Redrive> {
        // Letters not consumed yet have no mark to clear: mark them first.
        while self.consume_failures().await? > 0 {}
        let mut report = Redrive::default();
        for letter in self.stream.dead_letters().await? {
            let cleared = match given_up(&letter.record) {
                GivenUp::Stream(record) => match state::stream::item_of(&record) {
                    Ok(item) => self.table.clear_stalled(item.id).await?,
                    Err(_) => false,
                },
                // An object event goes back to its function's queue (S3 would not resend it).
                GivenUp::Object { reservation, .. } => {
                    if let Some(id) = reservation {
                        self.table.clear_stalled(id).await?;
                    }
                    self.db
                        .enqueue(&letter.mapping, vec![letter.record.clone()], false)
                        .await?;
                    true
                }
                GivenUp::Unknown(_) => false,
            };
            if cleared {
                report.redriven += 1;
            } else {
                report.moved_on += 1;
            }
            self.stream.remove_dead_letter(letter.id).await?;
        }
        Ok(report)
    }

    /// Serves the API on `addr` (loopback only) and runs every mapping until `stop` turns true.
    pub async fn serve(
        self,
        addr: SocketAddr,
        stop: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        if !addr.ip().is_loopback() {
            return Err(EngineError::NotLoopback(addr));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr().context("local address")?;
        self.set_public_url(&format!("http://{addr}"));
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
        let engine = Arc::new(self);
        {
            let (engine, stop) = (engine.clone(), stop.clone());
            tasks.push(tokio::spawn(
                async move { consume_failures(engine, stop).await },
            ));
        }
        #[cfg(feature = "aws")]
        if let Some(queue) = engine.bucket_queue.clone() {
            let (engine, stop) = (engine.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                take_bucket_events(queue, engine, stop).await
            }));
        }
        for invoker in &engine.invokers {
            let (invoker, stop) = (invoker.clone(), stop.clone());
            let queued = engine.db.subscribe_queue();
            tasks.push(tokio::spawn(async move {
                run_async(invoker, queued, stop).await
            }));
        }
        {
            let (engine, stop) = (engine.clone(), stop.clone());
            tasks.push(tokio::spawn(async move { expire(engine, stop).await }));
        }
        tracing::info!(%addr, data_dir = %engine.data_dir.display(), "serving");
        println!("Upload API listening on http://{addr}");
        match &engine.mail_dir {
            Some(mail) => println!(
                "Data in {} (mail in {})",
                engine.data_dir.display(),
                mail.display()
            ),
            None => println!(
                "Table, bucket and topic on AWS; checkpoints in {}",
                engine.data_dir.display()
            ),
        }
        println!("Try:\n  curl -X POST -H 'Content-type: image/jpeg' --data-binary '@sample.jpg' http://{addr}/upload");
        engine.serve_http(listener, stop).await?;
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// An asynchronous invoker's loop: delivers what is due, then waits for an event to be queued (in
/// this process, or a second later: `uploader ingest` queues from another).
async fn run_async(
    invoker: Arc<AsyncInvoker>,
    mut queued: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        queued.borrow_and_update();
        let wait = match invoker.step().await {
            Ok(AsyncStep::Progressed) => continue,
            Ok(AsyncStep::Idle) => Duration::from_secs(1),
            Ok(AsyncStep::Waiting(pause)) => pause.min(Duration::from_secs(1)),
            Err(e) => {
                tracing::error!(error = %e, "asynchronous delivery failed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = queued.changed() => {}
            _ = stop.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Deletes expired reservations, as DynamoDB's TTL does (it takes minutes to days there; here a
/// sweep every 5 seconds), and settles bucket events an interrupted write left held.
async fn expire(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    loop {
        match engine.expire_reservations().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reservations = n, "expired reservations deleted"),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "expiring reservations failed"),
        }
        // A write cut short (a crash, a killed `uploader ingest`) leaves its events held; a
        // write takes milliseconds, so one held for seconds was cut short.
        if let Err(e) = engine.recover_bucket_events(Duration::from_secs(5)).await {
            tracing::error!(error = %format!("{e:#}"), "recovering held bucket events failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// The failure consumer's loop: marks the items of new dead letters, twice a second at most.
async fn consume_failures(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = engine.consume_failures().await {
            tracing::error!(error = %format!("{e:#}"), "consuming dead letters failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
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

/// Takes the bucket's notifications from their queue until stopped (a long poll of a second).
#[cfg(feature = "aws")]
async fn take_bucket_events(
    queue: crate::aws_backend::BucketEventQueue,
    engine: Arc<Engine>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let taken = queue.poll(|event| {
            let engine = engine.clone();
            async move {
                engine
                    .object_created(&event.key, event.size, &event.etag)
                    .await
                    .map(|_| ())
            }
        });
        tokio::select! {
            result = taken => {
                if let Err(e) = result {
                    tracing::error!(error = %format!("{e:#}"), "taking the bucket's notifications failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
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
