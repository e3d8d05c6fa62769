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
