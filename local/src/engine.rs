//! Wiring: the same three handlers over the embedded adapters, with the routes and event source
//! mappings of template.yaml.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use aws_lambda_events::dynamodb::Event;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tokio::sync::{watch, Mutex};

use crate::db::{Database, SqliteTable};
use crate::dispatcher::{Dispatcher, Step, StreamFunction};
use crate::files::FileStore;
use crate::mailbox::Mailbox;
use crate::metrics::Metrics;
use crate::template::{self, Template};
use crate::EngineError;

pub const BUCKET: &str = "images";

/// How the engine runs. `from_env`-style defaults live in the CLI.
#[derive(Debug, Clone)]
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
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            email: "you@example.com".into(),
            template: template::EMBEDDED.to_owned(),
            parameters: BTreeMap::new(),
            retry_backoff: Duration::from_millis(200),
        }
    }
}

pub struct Engine {
    pub db: Database,
    pub table: Arc<SqliteTable>,
    pub store: Arc<FileStore>,
    pub mailbox: Arc<Mailbox>,
    pub metrics: Metrics,
    pub upload: Arc<upload::Deps>,
    pub routes: Vec<template::Route>,
    pub dispatchers: Vec<Arc<Mutex<Dispatcher>>>,
    data_dir: PathBuf,
}

struct ProcessFunction(process::Deps);
struct NoticeFunction(notice::Deps);

fn lambda_event(event: Value) -> Result<LambdaEvent<Event>, String> {
    let event: Event =
        serde_json::from_value(event).map_err(|e| format!("event does not deserialise: {e}"))?;
    Ok(LambdaEvent::new(event, lambda_runtime::Context::default()))
}

#[async_trait]
impl StreamFunction for ProcessFunction {
    async fn invoke(&self, event: Value) -> Result<Value, String> {
        let response = process::handle(lambda_event(event)?, &self.0)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::to_value(response).map_err(|e| e.to_string())
    }
}

#[async_trait]
impl StreamFunction for NoticeFunction {
    async fn invoke(&self, event: Value) -> Result<Value, String> {
        let response = notice::handle(lambda_event(event)?, &self.0)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::to_value(response).map_err(|e| e.to_string())
    }
}

fn concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Engine {
    pub fn open(cfg: EngineConfig) -> Result<Engine, EngineError> {
        let template = Template::parse(&cfg.template, &cfg.parameters)?;
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        let db = Database::open(&cfg.data_dir.join("pipeline.db"))?;
        let table = Arc::new(SqliteTable::new(db.clone()));
        let store = Arc::new(FileStore::new(&cfg.data_dir.join("objects"), BUCKET));
        let mailbox = Arc::new(Mailbox::new(
            db.clone(),
            cfg.data_dir.join("mail"),
            &cfg.email,
        )?);
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
        let settings = process::Settings::parse(
            &env(process_fn, "RENDITIONS")
                .unwrap_or_else(|| process::settings::DEFAULT_RENDITIONS.into()),
            match env(process_fn, "MAX_PIXELS") {
                Some(v) => v
                    .parse()
                    .map_err(|_| EngineError::Template(format!("MAX_PIXELS {v:?}")))?,
                None => process::settings::DEFAULT_MAX_PIXELS,
            },
        )
        .map_err(|e| EngineError::Template(e.to_string()))?;
        let process: Arc<dyn StreamFunction> = Arc::new(ProcessFunction(process::Deps {
            table: table.clone(),
            store: store.clone(),
            settings: Arc::new(settings),
            concurrency: concurrency(),
        }));
        let notice_fn = function("notice")?;
        let notice: Arc<dyn StreamFunction> = Arc::new(NoticeFunction(notice::Deps {
            table: table.clone(),
            notifier: mailbox.clone(),
            concurrency: 8,
        }));

        let mut dispatchers = Vec::new();
        for (f, target) in [(process_fn, process), (notice_fn, notice)] {
            let mapping = template
                .functions
                .iter()
                .find(|t| t.binary == f.binary)
                .and_then(|t| t.stream.as_ref())
                .ok_or_else(|| {
                    EngineError::Template(format!("{}: no DynamoDB event", f.logical_id))
                })?;
            dispatchers.push(Arc::new(Mutex::new(Dispatcher::new(
                f.binary.clone(),
                Arc::new(mapping.clone()),
                db.clone(),
                target,
                metrics.clone(),
                cfg.retry_backoff,
            ))));
        }
        Ok(Engine {
            db,
            table,
            store,
            mailbox,
            metrics,
            upload,
            routes: upload_fn.routes.clone(),
            dispatchers,
            data_dir: cfg.data_dir,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn router(&self) -> anyhow::Result<axum::Router> {
        crate::http::router(self.upload.clone(), &self.routes, self.metrics.clone())
    }

    /// Delivers every pending record to every mapping until none has work left (tests, `process`
    /// of a replayed stream). Retries pause as they would in `serve`.
    pub async fn drain(&self) -> anyhow::Result<()> {
        loop {
            let mut idle = true;
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
        tracing::info!(%addr, data_dir = %self.data_dir.display(), "serving");
        println!("Upload API listening on http://{addr}");
        println!(
            "Data in {} (mail in {})",
            self.data_dir.display(),
            self.mailbox.dir().display()
        );
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

/// A dispatcher's loop, holding its lock only while it steps so `drain` can interleave.
async fn run_shared(d: Arc<Mutex<Dispatcher>>, mut stop: watch::Receiver<bool>) {
    let db = d.lock().await.db_handle();
    let mut changes = db.subscribe();
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
                tracing::error!(error = %format!("{e:#}"), "dispatcher step failed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
}
