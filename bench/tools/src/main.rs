//! `bench-tools`: the benches' own tools (`bench/load.sh` runs them).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod commit_rate;
mod load;

#[derive(Debug, Parser)]
#[command(
    name = "bench-tools",
    about = "Load and commit-rate tools for the benches"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Single-row SQLite commits per second in DIR, with the engine's settings.
    CommitRate {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
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
            let report = load::run(load::LoadSpec {
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
        }
        Command::CommitRate { dir, seconds } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let rate =
                commit_rate::sqlite_commit_rate(&dir, std::time::Duration::from_secs_f64(seconds))?;
            println!("{}", serde_json::json!({ "sqlite_commits_per_s": rate }));
        }
    }
    Ok(())
}
