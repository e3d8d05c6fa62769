use std::sync::Arc;

use aws_adapters::{DynamoTable, S3Store};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use process::{handle, Config, Deps, MemoryPool};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Memory in 4 KiB pages, whatever the kernel's default: the image code keeps its large buffers
    // between invocations, so huge pages would only round them up (docs/benchmarks-process.md).
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages left as the kernel has them");
    }
    let cfg = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let deps = Deps {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&aws),
            cfg.table_name,
        )),
        store: Arc::new(S3Store::new(aws_sdk_s3::Client::new(&aws), cfg.bucket_name)),
        settings: Arc::new(cfg.settings),
        concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
        memory: Arc::new(MemoryPool::new(&cfg.memory)),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<_>| async move {
        handle(ev, deps).await
    }))
    .await
}
