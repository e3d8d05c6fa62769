use std::sync::Arc;

use aws_adapters::{DynamoTable, S3Store};
use ingest::{handle, Deps, IngestError};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let var =
        |k: &str| std::env::var(k).map_err(|_| IngestError::Config(format!("{k} is not set")));
    let max_object_bytes = var("MAX_OBJECT_BYTES")?
        .parse()
        .map_err(|_| IngestError::Config("MAX_OBJECT_BYTES is not a byte count".into()))?;
    let aws = aws_config::load_from_env().await;
    let deps = Deps {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&aws),
            var("TABLE_NAME")?,
        )),
        store: Arc::new(S3Store::new(
            aws_sdk_s3::Client::new(&aws),
            var("BUCKET_NAME")?,
        )),
        max_object_bytes,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<_>| async move {
        handle(ev, deps).await.map(|done| format!("{done:?}"))
    }))
    .await
}
