use clap::Parser;
use local::cli::{run, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    local::telemetry::init("info", std::io::stderr);
    run(Cli::parse()).await
}
