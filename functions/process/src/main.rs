use aws_adapters::AwsResources;
use config_vars::Vars;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use process::{handle, Config, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Memory in 4 KiB pages, whatever the kernel's default: the image code keeps its large buffers
    // between invocations, so huge pages would only round them up (docs/benchmarks.md, "Huge pages").
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages left as the kernel has them");
    }
    let metrics = pipeline_metrics::lambda::install(&Vars::env())?;
    let config = Config::from_vars(&Vars::env())?;
    let deps = Deps::new(config, &AwsResources::from_env().await)?;
    let deps = &deps;
    pipeline_metrics::lambda::run(
        metrics,
        service_fn(move |ev: LambdaEvent<_>| async move { handle(ev, deps).await }),
    )
    .await
}
