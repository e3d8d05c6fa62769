//! The local AWS stand-ins `make test` starts (see `aws_adapters::testing`), and the engine's AWS
//! backend over one test's resources.

pub use aws_adapters::testing::{endpoints, AwsWorld};

/// The engine's AWS backend over `world`'s table, bucket and topic.
#[cfg(feature = "aws")]
pub async fn backend(world: &AwsWorld) -> local_engine::Backend {
    use local_engine::backend::aws::{AwsBackend, AwsClients, AwsNames};
    let clients = AwsClients {
        dynamodb: world.ddb.clone(),
        streams: world.streams.clone(),
        s3: world.s3.clone(),
        sns: world.sns.clone(),
        sqs: world.sqs.clone(),
    };
    let names = AwsNames {
        table: world.table.clone(),
        bucket: world.bucket.clone(),
        topic_arn: world.topic_arn.clone(),
        bucket_events_queue: None,
    };
    local_engine::Backend::Aws(Box::new(AwsBackend::new(&clients, names).await.unwrap()))
}

#[cfg(not(feature = "aws"))]
pub async fn backend(_: &AwsWorld) -> local_engine::Backend {
    panic!("PIPELINE_BACKEND=aws needs the engine's AWS backend: cargo test --features local/aws")
}

/// Routes `world`'s bucket notifications to a queue and hands what arrives there to `engine`, as
/// S3 would invoke `ingest` (moto cannot invoke a function; `uploader serve` reads such a queue
/// itself with `BUCKET_EVENTS_QUEUE_URL`). Runs until the queue is gone.
#[cfg(feature = "aws")]
pub async fn forward_bucket_events(world: &AwsWorld, engine: std::sync::Arc<local_engine::Engine>) {
    let queue = local_engine::backend::aws::BucketEventQueue::new(
        world.sqs.clone(),
        world.route_bucket_events().await,
    );
    tokio::spawn(async move {
        loop {
            let taken = queue
                .poll(|e| {
                    let engine = engine.clone();
                    async move {
                        engine.object_created(&e.key, e.size, &e.etag).await?;
                        Ok(())
                    }
                })
                .await;
            if taken.is_err() {
                return;
            }
        }
    });
}

#[cfg(not(feature = "aws"))]
pub async fn forward_bucket_events(_: &AwsWorld, _: std::sync::Arc<local_engine::Engine>) {
    panic!("PIPELINE_BACKEND=aws needs the engine's AWS backend: cargo test --features local/aws")
}
