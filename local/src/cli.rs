//! `uploader`: the local engine's command line. It parses arguments and calls the engine or
//! [`crate::commands`]; it does no work of its own. Each subcommand takes only the options it
//! uses: those that open the engine's data take [`StoreArgs`], the others none of them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config_vars::Vars;
use local_engine::faults::Faults;
use local_engine::{Durability, Engine};

use crate::args::{parse_key_value, parse_seconds, LimitArgs, StoreArgs};

#[derive(Debug, Parser)]
#[command(
    name = "uploader",
    version,
    about = "The image-upload pipeline on one machine"
)]
pub struct Cli {
    /// Where the table, objects and mail live; also accepted after the subcommand, whose value
    /// wins.
    #[arg(long, hide = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API and every function of the template until Ctrl-C.
    Serve {
        #[command(flatten)]
        store: StoreArgs,
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
        durability: Durability,
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
        /// Deliver the topic's webhooks (template parameter WebhookUrl) to hosts other than
        /// loopback; without it such a URL is refused at start.
        /// `WEBHOOK_ANY_HOST` takes 1/0, true/false, yes/no, on/off.
        #[arg(long, env = "WEBHOOK_ANY_HOST",
              value_parser = clap::builder::BoolishValueParser::new())]
        webhook_any_host: bool,
        /// CA certificates (PEM) trusted for https:// webhooks besides the system's roots, for a
        /// receiver whose certificate comes from a CA of its own.
        #[arg(long, env = "WEBHOOK_CA_FILE", value_name = "PEM")]
        webhook_ca_file: Option<std::path::PathBuf>,
    },
    /// List items, newest first, from the table's index queries (the same as GET /items).
    Items {
        #[command(flatten)]
        store: StoreArgs,
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
    Item {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
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
        #[command(flatten)]
        store: StoreArgs,
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
    Replay {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the records and events the mappings gave up on (their failure queue), one JSON per
    /// line.
    DeadLetters {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Offer every item whose records were given up on to its function again (clears the stall
    /// marks; a running engine, or the next start, delivers them). Fix the cause first.
    Redrive {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The `uploader` binary: logging, the arguments, then the command on a Tokio runtime. Here rather
/// than in `main.rs` so that the runtime and every future it drives are compiled once, in this
/// library, not again in the binary (which took 24 s of the first `make run` build).
pub fn main() -> anyhow::Result<()> {
    local_engine::telemetry::init("info", std::io::stderr);
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let before = cli.data_dir.as_ref();
    let no_store = |command: &str| -> anyhow::Result<()> {
        match before {
            Some(_) => anyhow::bail!("--data-dir: `uploader {command}` keeps no data"),
            None => Ok(()),
        }
    };
    match cli.command {
        Command::Serve {
            store,
            addr,
            email,
            template,
            durability,
            parameters,
            retry_backoff,
            limits,
            process_memory_mb,
            webhook_any_host,
            webhook_ca_file,
        } => {
            let mut cfg = store.config(before).await?;
            cfg.webhooks.any_host = webhook_any_host;
            cfg.webhooks.ca_file = webhook_ca_file;
            cfg.email = email;
            cfg.retry_backoff = Duration::from_secs_f64(retry_backoff);
            cfg.server = limits.limits();
            cfg.max_backlog = limits.max_backlog;
            cfg.max_backlog_seconds = Duration::from_secs_f64(limits.max_backlog_seconds);
            cfg.admission_wait = Duration::from_secs_f64(limits.admission_wait);
            cfg.min_free_bytes = limits.min_free_space;
            // The work estimate's rates are measured once (a few renders): now, beside the start,
            // rather than on the first upload's path.
            std::thread::spawn(crate::work::rates);
            cfg.faults = Faults::from_vars(&Vars::env())?;
            cfg.durability = durability;
            if let Some(mb) = process_memory_mb {
                cfg.memory_mb.insert("process".into(), mb);
            }
            if let Some(path) = template {
                cfg.template = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
            cfg.parameters = parameters.into_iter().collect::<BTreeMap<_, _>>();
            let engine = Engine::open(cfg).await?;
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            engine.serve(addr, stop).await?;
            Ok(())
        }
        Command::Items {
            store,
            status,
            limit,
            json,
        } => {
            let selection = crate::commands::selection(status.as_deref())?;
            let engine = store.engine(before).await?;
            let items = crate::commands::items(engine.table().as_ref(), selection, limit).await?;
            crate::commands::print_items(&items, json, &mut std::io::stdout().lock())
        }
        Command::Item { store, id } => {
            let engine = store.engine(before).await?;
            let parsed = id
                .parse()
                .map_err(|_| anyhow::anyhow!("{id:?} is not an item id (a UUID)"))?;
            let item = engine
                .table()
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
            no_store("process")?;
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
            no_store("upload")?;
            for file in files {
                let line = crate::commands::upload_direct(&url, api_key.as_deref(), &file).await?;
                println!("{line}");
            }
            Ok(())
        }
        Command::Ingest { store, files } => {
            let engine = store.engine(before).await?;
            for file in files {
                let dropped = crate::commands::drop_in(&engine, &file).await?;
                println!("{}", serde_json::to_string(&dropped)?);
            }
            Ok(())
        }
        Command::DeadLetters { store } => {
            let engine = store.engine(before).await?;
            for letter in engine.stream().dead_letters().await? {
                println!("{}", serde_json::to_string(&letter)?);
            }
            Ok(())
        }
        Command::Redrive { store } => {
            let engine = store.engine(before).await?;
            let report = engine.redrive().await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Replay { store } => {
            let engine = store.engine(before).await?;
            engine.stream().reset_checkpoints(true).await?;
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
