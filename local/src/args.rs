//! The options several subcommands share: where the engine's data is ([`StoreArgs`]) and what a
//! client may cost the server ([`LimitArgs`]).

use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "aws")]
use anyhow::Context;
use local_engine::server::ServerLimits;
use local_engine::{Backend, Engine, EngineConfig};

/// Where the engine's data is: the data dir, and the backend.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Where the table, objects and mail live (default: .data).
    #[arg(long, env = "DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `embedded` (SQLite, files and a mailbox in DATA_DIR) or `aws` (DynamoDB, S3 and SNS through
    /// the SDK: region, credentials and endpoints from the usual AWS_* environment).
    #[arg(long, env = "BACKEND", default_value = "embedded", value_parser = ["embedded", "aws"])]
    pub backend: String,
    /// The DynamoDB table (with a NEW_AND_OLD_IMAGES stream), for --backend aws.
    #[arg(long, env = "TABLE_NAME")]
    pub table: Option<String>,
    /// The S3 bucket, for --backend aws.
    #[arg(long, env = "BUCKET_NAME")]
    pub bucket: Option<String>,
    /// The SNS topic, for --backend aws.
    #[arg(long, env = "TOPIC_ARN")]
    pub topic_arn: Option<String>,
    /// Address S3 by path (for S3-compatible endpoints on localhost). `S3_FORCE_PATH_STYLE`
    /// takes 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "S3_FORCE_PATH_STYLE",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_path_style: bool,
    /// For --backend aws: an SQS queue the bucket's notifications are routed to; the engine
    /// ingests what arrives there, as S3 would invoke `ingest`.
    #[arg(long, env = "BUCKET_EVENTS_QUEUE_URL")]
    pub bucket_events_queue: Option<String>,
    /// For --backend aws: make the table (as the template declares it), the bucket, a topic and
    /// the queues that stand in for S3's and SNS's deliveries where they are missing (DynamoDB
    /// Local and moto: `make run-dynamodb`). --table and --bucket name them.
    #[arg(long)]
    pub provision: bool,
}

/// What one HTTP client may cost the server (docs: limits and hostile input).
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
          default_value_t = local_engine::DEFAULT_MAX_BACKLOG)]
    pub max_backlog: u64,
    /// Seconds of accepted work (one core's, estimated from each image's header) the engine may
    /// have left to do before POST /upload, POST /uploads and signed PUTs answer 503 with
    /// Retry-After.
    #[arg(long, env = "MAX_BACKLOG_SECONDS", value_parser = parse_seconds,
          default_value_t = local_engine::DEFAULT_MAX_BACKLOG_SECONDS.as_secs_f64())]
    pub max_backlog_seconds: f64,
    /// Seconds a request over a backlog bound waits its turn for room (first come, first served)
    /// before it is refused.
    #[arg(long, env = "ADMISSION_WAIT", value_parser = parse_seconds,
          default_value_t = local_engine::DEFAULT_ADMISSION_WAIT.as_secs_f64())]
    pub admission_wait: f64,
    /// Bytes the engine keeps free on the data directory's file system: an upload or PUT that
    /// could go below it is refused with 507 before its body is read.
    #[arg(long, env = "MIN_FREE_SPACE", default_value_t = local_engine::disk::DEFAULT_MIN_FREE_BYTES)]
    pub min_free_space: u64,
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
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && Duration::try_from_secs_f64(v).is_ok() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// `Key=Value`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not Key=Value"))
}

impl StoreArgs {
    /// The engine's settings over this data dir and backend; `before` is a `--data-dir` given
    /// before the subcommand.
    pub async fn config(&self, before: Option<&PathBuf>) -> anyhow::Result<EngineConfig> {
        let data_dir = self
            .data_dir
            .as_ref()
            .or(before)
            .cloned()
            .unwrap_or_else(|| ".data".into());
        let mut cfg = crate::engine_config(data_dir);
        cfg.backend = self.backend().await?;
        Ok(cfg)
    }

    pub async fn engine(&self, before: Option<&PathBuf>) -> anyhow::Result<Engine> {
        Ok(Engine::open(self.config(before).await?).await?)
    }

    async fn backend(&self) -> anyhow::Result<Backend> {
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
        use local_engine::backend::aws::{AwsBackend, AwsClients, AwsNames};
        let need = |v: &Option<String>, what: &str| {
            v.clone()
                .with_context(|| format!("--backend aws needs {what}"))
        };
        let table = need(&self.table, "--table (TABLE_NAME)")?;
        let bucket = need(&self.bucket, "--bucket (BUCKET_NAME)")?;
        let clients = AwsClients::new(&aws_config::load_from_env().await, self.s3_path_style);
        let names = if self.provision {
            local_engine::backend::provision::provision(&clients, crate::TEMPLATE, &table, &bucket)
                .await?
        } else {
            AwsNames {
                table,
                bucket,
                topic_arn: need(&self.topic_arn, "--topic-arn (TOPIC_ARN)")?,
                bucket_events_queue: self.bucket_events_queue.clone(),
            }
        };
        Ok(Backend::Aws(Box::new(
            AwsBackend::new(&clients, names).await?,
        )))
    }
}
