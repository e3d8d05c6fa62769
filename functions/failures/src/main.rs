use std::collections::HashMap;
use std::sync::Arc;

use aws_adapters::streams::StreamReader;
use aws_adapters::DynamoTable;
use failures::{handle, Deps};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let table_name = var("TABLE_NAME")?;
    // The stream functions' Lambda names, so items say `process` or `notice`.
    let functions = HashMap::from([
        (var("PROCESS_FUNCTION")?, "process".to_owned()),
        (var("NOTICE_FUNCTION")?, "notice".to_owned()),
        (var("INGEST_FUNCTION")?, "ingest".to_owned()),
    ]);
    let aws = aws_config::load_from_env().await;
    let deps = Deps {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&aws),
            table_name,
        )),
        // The stream ARN comes with each message; the reader's own is not used for these reads.
        records: Arc::new(StreamReader::new(
            aws_sdk_dynamodbstreams::Client::new(&aws),
            String::new(),
        )),
        functions,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<_>| async move {
        handle(ev, deps).await
    }))
    .await
}
