//! The local engine: template.yaml's functions on one machine. The engine is a host, as Lambda
//! is: it reads the template's functions and their event sources, builds each function's handler
//! from its `Environment` (the same `Config::from_vars` its `main.rs` calls) through the
//! [`Registry`] of handlers it was given, and attaches it to its sources: the API's routes (served
//! on loopback), the table stream's mappings (filters, batches, retries, bisection, the on-failure
//! destination), the bucket's notifications (asynchronous invocation) and the failure queue. It
//! has no code of its own for any function; what it cannot emulate, it refuses at start-up. A
//! variable that names a resource it does not host (a CloudFront distribution) it leaves unset,
//! and says so once as it starts ([`Engine::unset`]).
//!
//! The ports are the embedded ones (SQLite with its stream, files, a mail folder, the topics'
//! webhooks: [`webhook`]) or, with feature `aws`, DynamoDB, S3 and SNS ([`backend`]), the table's
//! stream mirrored into the local one.
//!
//! Over 400 lines: [`Engine::open`] builds the ports and attaches every function in one reading
//! order, and the engine's few entry points sit beside it; the parts each live in a module.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use embedded_adapters::sqlite::{Database, SqliteStream};
use sam_template::Template;
use state::{ItemTable, ObjectStore};
use tokio::sync::watch;

pub mod admission;
mod attach;
pub mod backend;
pub mod bucket;
mod chores;
mod config;
pub mod disk;
mod error;
mod failure_queue;
pub mod faults;
pub mod host;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod objects;
mod redrive;
pub mod resources;
pub mod runner;
pub mod secret;
pub mod server;
pub mod telemetry;
pub mod topic;
pub mod webhook;

pub use backend::Backend;
pub use config::{
    EngineConfig, DEFAULT_ADMISSION_WAIT, DEFAULT_MAX_BACKLOG, DEFAULT_MAX_BACKLOG_SECONDS,
};
pub use embedded_adapters::sqlite::Durability;
pub use error::{EngineError, HostError};
pub use host::{ApiFunction, Handler, Registry};
pub use redrive::Redrive;

use crate::backend::BackendState;
use crate::bucket::BucketEvents;
use crate::faults::{Faults, FaultyNotifier, FaultyStore, FaultyTable};
use crate::metrics::Metrics;
use crate::resources::{LocalResources, Ports};
use crate::runner::Runner;
use crate::server::ServerLimits;

pub struct Engine {
    data_dir: PathBuf,
    db: Database,
    /// The local stream: the embedded table's own, or DynamoDB's mirrored into it.
    stream: SqliteStream,
    table: Arc<dyn ItemTable>,
    store: Arc<dyn ObjectStore>,
    /// The bucket without the fault switches (admission control's reads).
    unfaulted_store: Arc<dyn ObjectStore>,
    /// The table without the fault switches (admission control's reads).
    unfaulted_table: Arc<dyn ItemTable>,
    backend: Arc<BackendState>,
    hosted: attach::Hosted,
    /// Every runner: the functions' sources, then the backend's chores.
    runners: Vec<Arc<dyn Runner>>,
    bucket: Arc<BucketEvents>,
    metrics: Metrics,
    server: ServerLimits,
    admission: admission::Limits,
    originals: Option<Arc<lifecycle::Originals>>,
    work_estimate: Option<admission::WorkEstimate>,
    disk: disk::DiskSpace,
    faults: Faults,
    /// The topics' HTTP/S subscriptions, when the template has any (embedded backend).
    webhooks: Option<Arc<webhook::Webhooks>>,
    /// Their delivery worker, also among `runners`.
    deliveries: Option<Arc<dyn Runner>>,
}

impl Engine {
    /// Reads the template, builds the backend and hosts the template's functions: each is built
    /// (its configuration read, its secrets fetched) as it would be on a cold start.
    pub async fn open(cfg: EngineConfig) -> Result<Engine, EngineError> {
        let template = Template::parse(&cfg.template, &cfg.parameters)?;
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        let db = Database::open_with(&cfg.data_dir.join("pipeline.db"), cfg.durability)?;
        let stream = SqliteStream::new(db.clone());
        let secret = secret::load_or_create(&cfg.data_dir)?;
        let backoff = cfg.backoff();
        let metrics = Metrics::new();
        let mut built = backend::build(
            cfg.backend,
            &template,
            &backend::Local {
                data_dir: &cfg.data_dir,
                db: &db,
                email: &cfg.email,
                fsync: cfg.durability == Durability::Power,
                secret: &secret,
                webhook_limits: cfg.webhooks.clone(),
                metrics: &metrics,
            },
        )?;
        let webhooks = match built.webhooks.take() {
            None => None,
            Some(parts) => {
                let webhooks = Arc::new(
                    webhook::Webhooks::start(
                        db.clone(),
                        &cfg.data_dir,
                        parts.targets,
                        parts.metrics,
                        cfg.webhooks,
                    )
                    .await?,
                );
                Some((webhooks, parts.wake))
            }
        };
        // Every port goes through the fault switches; with none set they only pass calls on.
        let faults = cfg.faults.clone();
        let unfaulted_table = built.table.clone();
        let table: Arc<dyn ItemTable> = Arc::new(FaultyTable {
            inner: built.table,
            faults: faults.clone(),
        });
        let bucket = built.bucket;
        // Admission control reads objects' first bytes past the fault switches: the drills'
        // faults (an object read that aborts, a count of failures) are the functions' to meet.
        let unfaulted_store = bucket(state::DEFAULT_LINK_TTL);
        let store_faults = faults.clone();
        let faulty_bucket = move |links| -> Arc<dyn ObjectStore> {
            Arc::new(FaultyStore {
                inner: bucket(links),
                faults: store_faults.clone(),
            })
        };
        let store = faulty_bucket(state::DEFAULT_LINK_TTL);
        let topics = built
            .topics
            .into_iter()
            .filter_map(|(id, notifier)| {
                let arn = built.site.topics.get(&id)?.clone();
                let faulty: Arc<dyn state::Notifier> = Arc::new(FaultyNotifier {
                    inner: notifier,
                    faults: faults.clone(),
                });
                Some((arn, faulty))
            })
            .collect();
        let secrets = secret::TemplateSecrets::load_or_create(&template, &cfg.data_dir)?;
        let resources = Arc::new(LocalResources::new(
            &template,
            built.site.clone(),
            secrets,
            Ports {
                table: table.clone(),
                bucket: Box::new(faulty_bucket),
                topics,
                given_up: Arc::new(stream.clone()),
            },
        ));
        let hosted = attach::attach(&attach::Host {
            template: &template,
            registry: &cfg.functions,
            resources: &resources,
            site: &built.site,
            memory_mb: &cfg.memory_mb,
            db: &db,
            stream: &stream,
            observer: Arc::new(metrics::Observed {
                metrics: metrics.clone(),
                faults: faults.clone(),
            }),
            backoff,
        })
        .await?;
        if !hosted.unset.is_empty() {
            let unset: Vec<String> = hosted
                .unset
                .iter()
                .map(|(function, unset)| format!("{function}.{unset}"))
                .collect();
            tracing::warn!(
                unset = %unset.join("; "),
                "left unset: these variables name resources the engine does not host"
            );
        }
        for function in &hosted.invoked {
            metrics.register_function(function);
        }
        let largest_body = hosted
            .routes
            .iter()
            .map(|r| r.function.max_body_bytes())
            .max()
            .unwrap_or(0);
        cfg.server.validate(largest_body)?;
        if cfg.max_backlog == 0 {
            return Err(EngineError::NoBacklog);
        }
        let bucket = Arc::new(BucketEvents::new(
            db.clone(),
            store.bucket(),
            hosted.bucket_rules.clone(),
        ));
        let backend = Arc::new(built.state);
        let originals_days = template
            .parameters
            .get("OriginalsDays")
            .and_then(|d| d.parse::<u64>().ok())
            .unwrap_or(lifecycle::DEFAULT_ORIGINALS_DAYS);
        let originals = backend.files().map(|files| {
            Arc::new(lifecycle::Originals {
                files: files.clone(),
                db: db.clone(),
                max_age: std::time::Duration::from_secs(originals_days * 24 * 3600),
            })
        });
        let mut runners = hosted.runners.clone();
        runners.extend(chores(&backend, &bucket, &store, originals.clone()));
        let deliveries = webhooks.as_ref().map(|(webhooks, wake)| {
            let runner: Arc<dyn Runner> = Arc::new(webhook::delivery::Deliveries::new(
                webhooks.clone(),
                wake.subscribe(),
            ));
            runners.push(runner.clone());
            runner
        });
        Ok(Engine {
            data_dir: cfg.data_dir.clone(),
            db,
            stream,
            table,
            store,
            unfaulted_store,
            unfaulted_table,
            backend,
            hosted,
            runners,
            bucket,
            metrics,
            server: cfg.server,
            admission: admission::Limits {
                max_records: cfg.max_backlog,
                max_seconds: cfg.max_backlog_seconds,
                max_wait: cfg.admission_wait,
            },
            work_estimate: cfg.work_estimate,
            originals,
            disk: disk::DiskSpace::new(&cfg.data_dir, cfg.min_free_bytes),
            faults,
            webhooks: webhooks.map(|(w, _)| w),
            deliveries,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The variables left unset because they name resources the engine does not host (a CDN),
    /// each with its function's logical id.
    pub fn unset(&self) -> &[(String, sam_template::Unset)] {
        &self.hosted.unset
    }

    /// The items table, as the functions see it.
    pub fn table(&self) -> &Arc<dyn ItemTable> {
        &self.table
    }

    /// The bucket, as the functions see it.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The local stream, with the mappings' checkpoints and dead letters.
    pub fn stream(&self) -> &SqliteStream {
        &self.stream
    }

    /// The API's routes (each to its function), `GET /metrics` and, when embedded, the bucket's
    /// `/objects/...`.
    pub fn router(&self) -> anyhow::Result<axum::Router> {
        let admission = self.admission();
        let router = http::router(http::Api {
            routes: self.hosted.routes.clone(),
            metrics: self.metrics.clone(),
            objects: self.backend.files().map(|files| objects::Objects {
                files: files.clone(),
                events: self.bucket.clone(),
                faults: self.faults.clone(),
                admission: admission.clone(),
                metrics: self.metrics.clone(),
                disk: self.disk.clone(),
            }),
            budget: http::ByteBudget::new(self.server.max_buffered_bytes),
            admission,
            disk: self.disk.clone(),
        })?;
        Ok(match &self.webhooks {
            Some(webhooks) => router.merge(webhooks.router()),
            None => router,
        })
    }

    /// Admission control over this engine's backlog (one is shared by all the routes a router
    /// serves).
    pub fn admission(&self) -> admission::Admission {
        admission::Admission::new(
            self.stream.clone(),
            self.hosted.stream_mappings.clone().into(),
            self.admission,
            self.work_estimate.clone(),
            self.unfaulted_table.clone(),
            self.unfaulted_store.clone(),
        )
    }

    /// Stream records the slowest mapping has not read yet: what admission control bounds. On AWS
    /// it counts what the mirror has copied so far (it polls four times a second).
    pub async fn backlog(&self) -> anyhow::Result<u64> {
        self.stream.backlog(&self.hosted.stream_mappings).await
    }

    /// Where the engine is reached (`http://127.0.0.1:3000`): links to objects, and the webhooks'
    /// SubscribeURL, UnsubscribeURL and SigningCertURL, start with it.
    pub fn set_public_url(&self, base: &str) {
        if let Some(files) = self.backend.files() {
            files.set_public_url(base);
        }
        if let Some(webhooks) = &self.webhooks {
            webhooks.set_base_url(base);
        }
    }

    /// Serves the API on `listener`, under the engine's [`ServerLimits`], until `stop` turns true
    /// (or its sender is dropped). Nothing else runs: see [`Engine::serve`].
    pub async fn serve_http(
        &self,
        listener: tokio::net::TcpListener,
        stop: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        server::serve(listener, self.router()?, self.server, stop).await;
        Ok(())
    }

    /// Reads what DynamoDB Streams has that the mirror does not (AWS backend); 0 when embedded.
    /// Returns how many records it copied.
    pub async fn poll_mirror(&self) -> anyhow::Result<usize> {
        self.backend.poll_mirror().await
    }

    /// An object was created in the bucket by other means than the engine's own PUT (an object
    /// put on S3 directly, which moto does not notify): queue its notifications, due now.
    pub async fn object_created(&self, key: &str, size: u64, etag: &str) -> anyhow::Result<usize> {
        let held = self.bucket.object_created(key, size, etag).await?;
        self.bucket.released(held).await
    }

    /// Puts `body` into the bucket under `key` with its notifications, as `aws s3 cp` does:
    /// returns its ETag (the MD5 in hex) and how many functions its notifications go to.
    pub async fn put_object(
        &self,
        key: &str,
        body: bytes::Bytes,
    ) -> anyhow::Result<(String, usize)> {
        use md5::Digest;
        let etag: String = md5::Md5::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // Held before the object is in place, released after: never an event before its object.
        let held = self
            .bucket
            .object_created(key, body.len() as u64, &etag)
            .await?;
        self.store
            .put(key, body, "application/octet-stream")
            .await?;
        Ok((etag, self.bucket.released(held).await?))
    }

    /// Deletes the reservations whose TTL passed, as DynamoDB's TTL does (embedded table only;
    /// on AWS, DynamoDB does it). Returns how many.
    pub async fn expire_reservations(&self) -> anyhow::Result<usize> {
        self.expire_reservations_at(state::now_ms() / 1000).await
    }

    /// As [`Engine::expire_reservations`], as if it were `now_s` (epoch seconds): in steps of
    /// [`chores::EXPIRE_STEP`], each its own short write, as the engine's sweep does.
    pub async fn expire_reservations_at(&self, now_s: i64) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let step = self.backend.expire(now_s, chores::EXPIRE_STEP).await?;
            total += step;
            if step < chores::EXPIRE_STEP {
                return Ok(total);
            }
        }
    }

    /// Removes the originals past `OriginalsDays` at `now` that no live item names, as the
    /// bucket's lifecycle rules do (embedded bucket; see [`lifecycle`]). Returns how many.
    pub async fn expire_originals_at(&self, now: std::time::SystemTime) -> anyhow::Result<usize> {
        match &self.originals {
            Some(originals) => originals.expire(now).await,
            None => Ok(0),
        }
    }

    /// One step of expiring reservations, as if it were `now_s`: at most `at_most` deleted.
    pub async fn expire_reservations_step(
        &self,
        now_s: i64,
        at_most: usize,
    ) -> anyhow::Result<usize> {
        self.backend.expire(now_s, at_most).await
    }

    /// Steps every mapping, invoker and chore until none has work left (tests, the CLI's
    /// redrive). Retries pause as they would in [`Engine::serve`].
    pub async fn drain(&self) -> anyhow::Result<()> {
        runner::drain(&self.runners).await
    }

    /// Delivers what the webhooks' outbox holds until nothing is due or waiting for a retry (each
    /// retry after its policy's delay), as the running engine's worker does. Not part of
    /// [`Engine::drain`].
    pub async fn drain_webhooks(&self) -> anyhow::Result<()> {
        match &self.deliveries {
            Some(runner) => {
                let runner = runner.clone();
                loop {
                    match runner.step().await? {
                        runner::Pace::Idle => return Ok(()),
                        runner::Pace::Busy => {}
                        runner::Pace::Retry(pause) | runner::Pace::Due(pause) => {
                            tokio::time::sleep(pause).await
                        }
                    }
                }
            }
            None => Ok(()),
        }
    }

    /// Redrives every dead letter (see [`Redrive`]): the failure queue is consumed first, so that
    /// every letter's item is marked, then each letter is offered again and removed. The running
    /// engine, or the next start, delivers what was offered.
    pub async fn redrive(&self) -> anyhow::Result<Redrive> {
        runner::drain(&self.hosted.failure_queues).await?;
        redrive::Redriver {
            stream: &self.stream,
            db: &self.db,
            table: &self.table,
            async_queues: &self.hosted.async_queues,
        }
        .redrive()
        .await
    }

    /// Serves the API on `addr` (loopback only) and runs every mapping, invoker and chore until
    /// `stop` turns true.
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
        let tasks: Vec<_> = self
            .runners
            .iter()
            .map(|r| tokio::spawn(runner::run(r.clone(), stop.clone())))
            .collect();
        tracing::info!(%addr, data_dir = %self.data_dir.display(), "serving");
        println!("Upload API listening on http://{addr}");
        println!("{}", self.backend.describe(&self.data_dir));
        println!("Try:\n  curl -X POST -H 'Content-type: image/jpeg' --data-binary '@sample.jpg' http://{addr}/upload");
        self.serve_http(listener, stop).await?;
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// The backend's runners beside the functions'.
fn chores(
    backend: &Arc<BackendState>,
    bucket: &Arc<BucketEvents>,
    store: &Arc<dyn ObjectStore>,
    originals: Option<Arc<lifecycle::Originals>>,
) -> Vec<Arc<dyn Runner>> {
    let housekeeping: Arc<dyn Runner> = Arc::new(chores::Housekeeping {
        backend: backend.clone(),
        bucket: bucket.clone(),
        store: store.clone(),
        originals,
        originals_checked: Default::default(),
    });
    let mut chores = vec![housekeeping];
    chores.extend(backend.runners(bucket));
    chores
}
