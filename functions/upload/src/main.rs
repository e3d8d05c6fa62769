use std::sync::Arc;

use aws_adapters::{DynamoTable, S3Store};
use lambda_http::{service_fn, Error, Request};
use upload::{handle, Config, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let cfg = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let deps = Deps {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&aws),
            cfg.table_name,
        )),
        store: Arc::new(
            S3Store::new(aws_sdk_s3::Client::new(&aws), cfg.bucket_name)
                .with_link_ttl(cfg.link_ttl),
        ),
        max_upload_bytes: cfg.max_upload_bytes,
        max_object_bytes: cfg.max_object_bytes,
        upload_url_ttl: cfg.upload_url_ttl,
        cursor_key: cfg.cursor_key,
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(handle(req, deps).await)
    }))
    .await
}
