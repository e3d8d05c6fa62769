use aws_adapters::AwsResources;
use config_vars::Vars;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use notice::{handle, Config, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let metrics = pipeline_metrics::lambda::install(&Vars::env())?;
    let config = Config::from_vars(&Vars::env())?;
    let deps = Deps::new(config, &AwsResources::from_env().await).await?;
    let deps = &deps;
    pipeline_metrics::lambda::run(
        metrics,
        service_fn(move |ev: LambdaEvent<_>| async move { handle(ev, deps).await }),
    )
    .await
}
