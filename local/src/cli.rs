//! `uploader`: the local engine's command line. It parses arguments and calls the engine or
//! [`crate::commands`]; it does no work of its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::server::ServerLimits;
use crate::{Backend, Engine, EngineConfig};

#[derive(Debug, Parser)]
#[command(
    name = "uploader",
    version,
    about = "The image-upload pipeline on one machine"
)]
pub struct Cli {
    /// Where the table, objects and mail live.
    #[arg(long, env = "DATA_DIR", default_value = ".data", global = true)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the table, bucket and topic are.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// `embedded` (SQLite, files and a mailbox in DATA_DIR) or `aws` (DynamoDB, S3 and SNS through
    /// the SDK: region, credentials and endpoints from the usual AWS_* environment).
    #[arg(long, env = "BACKEND", default_value = "embedded", value_parser = ["embedded", "aws"], global = true)]
    pub backend: String,
    /// The DynamoDB table (with a NEW_AND_OLD_IMAGES stream), for --backend aws.
    #[arg(long, env = "TABLE_NAME", global = true)]
    pub table: Option<String>,
    /// The S3 bucket, for --backend aws.
    #[arg(long, env = "BUCKET_NAME", global = true)]
    pub bucket: Option<String>,
    /// The SNS topic, for --backend aws.
    #[arg(long, env = "TOPIC_ARN", global = true)]
    pub topic_arn: Option<String>,
    /// Address S3 by path (for S3-compatible endpoints on localhost).
    #[arg(long, env = "S3_FORCE_PATH_STYLE", global = true)]
    pub s3_path_style: bool,
    /// For --backend aws: an SQS queue the bucket's notifications are routed to; the engine
    /// ingests what arrives there, as S3 would invoke `ingest`.
    #[arg(long, env = "BUCKET_EVENTS_QUEUE_URL", global = true)]
    pub bucket_events_queue: Option<String>,
}

impl BackendArgs {
    pub async fn backend(&self) -> anyhow::Result<Backend> {
        if self.backend == "embedded" {
            return Ok(Backend::Embedded);
        }
        self.aws_backend().await
    }

    #[cfg(not(feature = "aws"))]
    async fn aws_backend(&self) -> anyhow::Result<Backend> {
        anyhow::bail!(
            "--backend aws needs an uploader built with the `aws` feature \
             (cargo build --release -p local --features aws)"
        )
    }

    #[cfg(feature = "aws")]
    async fn aws_backend(&self) -> anyhow::Result<Backend> {
        let need = |v: &Option<String>, what: &str| {
            v.clone()
                .with_context(|| format!("--backend aws needs {what}"))
        };
        let table = need(&self.table, "--table (TABLE_NAME)")?;
        let bucket = need(&self.bucket, "--bucket (BUCKET_NAME)")?;
        let topic = need(&self.topic_arn, "--topic-arn (TOPIC_ARN)")?;
        let sdk = aws_config::load_from_env().await;
        let mut backend = crate::aws_backend::AwsBackend::connect(
            &sdk,
            &table,
            &bucket,
            &topic,
            self.s3_path_style,
        )
        .await?;
        backend.bucket_events = self.bucket_events_queue.as_ref().map(|url| {
            crate::aws_backend::BucketEventQueue::new(aws_sdk_sqs::Client::new(&sdk), url)
        });
        Ok(Backend::Aws(backend))
    }

    async fn engine(&self, data_dir: &std::path::Path) -> anyhow::Result<Engine> {
        let mut cfg = EngineConfig::new(data_dir);
        cfg.backend = self.backend().await?;
        Ok(Engine::open(cfg)?)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API and both stream functions until Ctrl-C.
    Serve {
        /// Loopback address to listen on.
        #[arg(long, env = "ADDR", default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
        /// Address the topic's email subscription delivers to (one .eml per notice in DATA_DIR/mail).
        #[arg(long, env = "EMAIL", default_value = "you@example.com")]
        email: String,
        /// A template other than the one built in.
        #[arg(long, env = "TEMPLATE")]
        template: Option<PathBuf>,
        /// `process`: survive a killed process (the default); `power`: also a power cut (fsync
        /// every commit and file; slower).
        #[arg(long, env = "DURABILITY", default_value = "process")]
        durability: embedded_adapters::sqlite::Durability,
        /// Template parameter overrides, e.g. --parameter MaxPixels=1000000.
        #[arg(long = "parameter", value_parser = parse_key_value)]
        parameters: Vec<(String, String)>,
        /// First pause before a failed batch is retried; it doubles per attempt, up to 60 s.
        #[arg(long, env = "RETRY_BACKOFF", value_name = "SECONDS", value_parser = parse_seconds,
              default_value_t = 2.0)]
        retry_backoff: f64,
        #[command(flatten)]
        limits: LimitArgs,
        /// The process function's memory in MB (default: its MemorySize in the template). Images
        /// in flight share it; one that would need more is refused.
        #[arg(long, env = "PROCESS_MEMORY_MB")]
        process_memory_mb: Option<u64>,
    },
    /// List items, newest first, from the table's index queries (the same as GET /items).
    Items {
        /// Only items at this status (uploaded, processed, notified, failed), or `stalled`: the
        /// ones whose records a function gave up on.
        #[arg(long)]
        status: Option<String>,
        /// At most this many items (every one, through as many pages as it takes, if 0).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one item as JSON.
    Item { id: String },
    /// Upload photos of any size the direct way: reserve (`POST /uploads`), then PUT the bytes to
    /// the signed URL the reservation gives. Works with the local engine and the deployed API.
    /// Prints one JSON line per file: its item's id and status.
    Upload {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The API's base URL (the deployed API's, e.g. https://abc.execute-api.../prod).
        #[arg(long, env = "API_URL", default_value = "http://127.0.0.1:3000")]
        url: String,
        /// The deployed API's key (`make outputs` says how to read it); none locally.
        #[arg(long, env = "API_KEY")]
        api_key: Option<String>,
    },
    /// Drop files into the local bucket under `ingest/` (as `aws s3 cp FILE s3://BUCKET/ingest/`
    /// does on AWS): the running engine, or its next start, makes an item of each. Prints one JSON
    /// line per file: its key and the id its item has.
    Ingest {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the process step on files: write their renditions to --out, print metadata as JSON lines.
    Process {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Renditions, as template.yaml's Renditions parameter.
        #[arg(long, env = "RENDITIONS", default_value = imaging::settings::DEFAULT_RENDITIONS)]
        renditions: String,
        #[arg(long, env = "MAX_PIXELS", default_value_t = imaging::settings::DEFAULT_MAX_PIXELS)]
        max_pixels: u64,
        /// The memory in MB of the function whose budget to apply (as the process function's
        /// MemorySize).
        #[arg(long, env = "PROCESS_MEMORY_MB", default_value_t = imaging::budget::DEFAULT_FUNCTION_MEMORY_MB)]
        process_memory_mb: u64,
    },
    /// Deliver the whole stream again to every mapping (a running engine picks it up).
    Replay,
    /// List the records the mappings gave up on (their on-failure destination), one JSON per line.
    DeadLetters,
    /// Offer every item whose records were given up on to its function again (clears the stall
    /// marks; a running engine, or the next start, delivers them). Fix the cause first.
    Redrive,
    /// Load a running engine over HTTP and report throughput, latency and CPU per item (JSON).
    Load {
        /// The engine's base URL.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        /// The image every upload sends.
        #[arg(long)]
        image: PathBuf,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Uploads per second (open loop); 0 = as fast as --concurrency allows (closed loop).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// The engine's pid, for CPU time per item.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Single-row SQLite commits per second in DATA_DIR, with the engine's settings.
    CommitRate {
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

/// What one HTTP client may cost the server (README, "Limits and hostile input: the local server").
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Seconds a connection has to send a complete request head, from being accepted or from its
    /// last response.
    #[arg(long, env = "HEADER_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds,
          default_value_t = ServerLimits::DEFAULT.header_timeout.as_secs_f64())]
    pub header_timeout: f64,
    /// Seconds a connection may stay silent with no request in progress (new or kept alive)
    /// before it is closed; at most --header-timeout.
    #[arg(long, env = "IDLE_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds,
          default_value_t = ServerLimits::DEFAULT.idle_timeout.as_secs_f64())]
    pub idle_timeout: f64,
    /// Seconds a request body has to arrive whole, from its request head (408 after).
    #[arg(long, env = "BODY_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds,
          default_value_t = ServerLimits::DEFAULT.body_timeout.as_secs_f64())]
    pub body_timeout: f64,
    /// Connections served at once (more wait to be accepted); lowered to leave a quarter of the
    /// file-descriptor limit (ulimit -n) to the engine.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = ServerLimits::DEFAULT.max_connections)]
    pub max_connections: usize,
    /// Bytes of upload bodies buffered across all requests at once (503 with Retry-After beyond).
    #[arg(long, env = "MAX_BUFFERED_BYTES", default_value_t = ServerLimits::DEFAULT.max_buffered_bytes)]
    pub max_buffered_bytes: usize,
    /// Stream records of accepted work (each upload writes three) the engine may have left to
    /// do before POST /upload and POST /uploads answer 503 with Retry-After.
    #[arg(long, env = "MAX_BACKLOG", value_parser = clap::value_parser!(u64).range(1..),
          default_value_t = crate::engine::DEFAULT_MAX_BACKLOG)]
    pub max_backlog: u64,
    /// Seconds of accepted work, at the rate the pipeline has been getting through it, the engine
    /// may have left to do before POST /upload and POST /uploads answer 503 with Retry-After
    /// (from 100 records behind; below that only --max-backlog counts).
    #[arg(long, env = "MAX_BACKLOG_SECONDS", value_parser = parse_seconds,
          default_value_t = crate::engine::DEFAULT_MAX_BACKLOG_SECONDS.as_secs_f64())]
    pub max_backlog_seconds: f64,
}

impl LimitArgs {
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            header_timeout: Duration::from_secs_f64(self.header_timeout),
            idle_timeout: Duration::from_secs_f64(self.idle_timeout),
            body_timeout: Duration::from_secs_f64(self.body_timeout),
            max_connections: self.max_connections,
            max_buffered_bytes: self.max_buffered_bytes,
        }
    }
}

/// A positive number of seconds, fractions allowed.
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && Duration::try_from_secs_f64(v).is_ok() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not Key=Value"))
}

/// The `uploader` binary: logging, the arguments, then the command on a Tokio runtime. Here rather
/// than in `main.rs` so that the runtime and every future it drives are compiled once, in this
/// library, not again in the binary (which took 24 s of the first `make run` build).
pub fn main() -> anyhow::Result<()> {
    crate::telemetry::init("info", std::io::stderr);
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            addr,
            email,
            template,
            durability,
            parameters,
            retry_backoff,
            limits,
            process_memory_mb,
        } => {
            let mut cfg = EngineConfig::new(&cli.data_dir);
            cfg.email = email;
            cfg.retry_backoff = Duration::from_secs_f64(retry_backoff);
            cfg.server = limits.limits();
            cfg.max_backlog = limits.max_backlog;
            cfg.max_backlog_seconds = Duration::from_secs_f64(limits.max_backlog_seconds);
            cfg.faults = crate::faults::Faults::from_env()?;
            cfg.durability = durability;
            cfg.process_memory_mb = process_memory_mb;
            if let Some(path) = template {
                cfg.template = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
            cfg.parameters = parameters.into_iter().collect::<BTreeMap<_, _>>();
            cfg.backend = cli.backend.backend().await?;
            let engine = Engine::open(cfg)?;
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            engine.serve(addr, stop).await?;
            Ok(())
        }
        Command::Items {
            status,
            limit,
            json,
        } => {
            let selection = crate::commands::selection(status.as_deref())?;
            let engine = cli.backend.engine(&cli.data_dir).await?;
            let items = crate::commands::items(engine.table.as_ref(), selection, limit).await?;
            crate::commands::print_items(&items, json, &mut std::io::stdout().lock())
        }
        Command::Item { id } => {
            let engine = cli.backend.engine(&cli.data_dir).await?;
            let parsed = id
                .parse()
                .map_err(|_| anyhow::anyhow!("{id:?} is not an item id (a UUID)"))?;
            let item = engine
                .table
                .get(parsed)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no item {id}"))?;
            println!("{}", serde_json::to_string_pretty(&item)?);
            Ok(())
        }
        Command::Process {
            files,
            out,
            renditions,
            max_pixels,
            process_memory_mb,
        } => {
            let memory = imaging::MemoryPlan::for_function(process_memory_mb)?;
            imaging::keep_at_most(memory.kept_bytes);
            let settings = imaging::Settings::parse(&renditions, max_pixels)?.with_memory(&memory);
            crate::commands::process_files(&files, &out, &settings)
        }
        Command::Upload {
            files,
            url,
            api_key,
        } => {
            for file in files {
                let line = crate::commands::upload_direct(&url, api_key.as_deref(), &file).await?;
                println!("{line}");
            }
            Ok(())
        }
        Command::Ingest { files } => {
            let engine = cli.backend.engine(&cli.data_dir).await?;
            for file in files {
                let dropped = crate::commands::drop_in(&engine, &file).await?;
                println!("{}", serde_json::to_string(&dropped)?);
            }
            Ok(())
        }
        Command::DeadLetters => {
            let engine = cli.backend.engine(&cli.data_dir).await?;
            for letter in engine.stream.dead_letters().await? {
                println!("{}", serde_json::to_string(&letter)?);
            }
            Ok(())
        }
        Command::Redrive => {
            let engine = cli.backend.engine(&cli.data_dir).await?;
            let report = engine.redrive().await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Load {
            url,
            image,
            seconds,
            rate,
            concurrency,
            pid,
        } => {
            let bytes =
                std::fs::read(&image).with_context(|| format!("reading {}", image.display()))?;
            let content_type = state::media::sniff(&bytes)
                .with_context(|| format!("{}", image.display()))?
                .content_type();
            let report = crate::load::run(crate::load::LoadSpec {
                url,
                image: bytes.into(),
                content_type: content_type.into(),
                duration: std::time::Duration::from_secs_f64(seconds),
                rate,
                concurrency,
                engine_pid: pid,
            })
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::CommitRate { seconds } => {
            std::fs::create_dir_all(&cli.data_dir)?;
            let rate = crate::load::sqlite_commit_rate(
                &cli.data_dir,
                std::time::Duration::from_secs_f64(seconds),
            )?;
            println!("{}", serde_json::json!({ "sqlite_commits_per_s": rate }));
            Ok(())
        }
        Command::Replay => {
            let engine = Engine::open(EngineConfig::new(&cli.data_dir))?;
            engine.stream.reset_checkpoints(true).await?;
            println!("every mapping will read the stream again from its start");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
