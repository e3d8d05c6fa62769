use std::sync::Arc;

use aws_adapters::{DynamoTable, SnsNotifier};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use notice::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table_name = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let topic_arn = std::env::var("TOPIC_ARN").map_err(|_| "TOPIC_ARN is not set")?;
    let aws = aws_config::load_from_env().await;
    let deps = Deps {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&aws),
            table_name,
        )),
        notifier: Arc::new(SnsNotifier::new(aws_sdk_sns::Client::new(&aws), topic_arn)),
        concurrency: notice::CONCURRENCY,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<_>| async move {
        handle(ev, deps).await
    }))
    .await
}
