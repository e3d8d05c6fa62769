use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use process::{handle, Deps, Settings};
use state::aws::{DynamoTable, S3Store};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table_name = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let bucket_name = std::env::var("BUCKET_NAME").map_err(|_| "BUCKET_NAME is not set")?;
    let aws = aws_config::load_from_env().await;
    let deps = Deps {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&aws),
            table_name,
        )),
        store: Arc::new(S3Store::new(aws_sdk_s3::Client::new(&aws), bucket_name)),
        settings: Arc::new(Settings::from_env()?),
        concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<_>| async move {
        handle(ev, deps).await
    }))
    .await
}
