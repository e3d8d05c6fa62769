//! The local AWS stand-ins `make test` starts (see `aws_adapters::testing`), and the engine's AWS
//! backend over one test's resources.

pub use aws_adapters::testing::{endpoints, AwsWorld};

/// The engine's AWS backend over `world`'s table, bucket and topic.
#[cfg(feature = "aws")]
pub async fn backend(world: &AwsWorld) -> local::Backend {
    local::Backend::Aws(
        local::aws_backend::AwsBackend::from_clients(
            world.ddb.clone(),
            world.streams.clone(),
            world.s3.clone(),
            world.sns.clone(),
            &world.table,
            &world.bucket,
            &world.topic_arn,
        )
        .await
        .unwrap(),
    )
}

#[cfg(not(feature = "aws"))]
pub async fn backend(_: &AwsWorld) -> local::Backend {
    panic!("PIPELINE_BACKEND=aws needs the engine's AWS backend: cargo test --features local/aws")
}

/// Routes `world`'s bucket notifications to a queue and hands what arrives there to `engine`, as
/// S3 would invoke `ingest` (moto cannot invoke a function; `uploader serve` reads such a queue
/// itself with `BUCKET_EVENTS_QUEUE_URL`). Runs until the queue is gone.
#[cfg(feature = "aws")]
pub async fn forward_bucket_events(world: &AwsWorld, engine: std::sync::Arc<local::Engine>) {
    let queue = local::aws_backend::BucketEventQueue::new(
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
pub async fn forward_bucket_events(_: &AwsWorld, _: std::sync::Arc<local::Engine>) {
    panic!("PIPELINE_BACKEND=aws needs the engine's AWS backend: cargo test --features local/aws")
}
