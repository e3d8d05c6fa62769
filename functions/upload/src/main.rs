use aws_adapters::AwsResources;
use config_vars::Vars;
use lambda_http::{service_fn, Error, Request};
use upload::{handle, Config, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let metrics = pipeline_metrics::lambda::install(&Vars::env())?;
    let config = Config::from_vars(&Vars::env())?;
    let deps = Deps::new(config, &AwsResources::from_env().await).await?;
    let deps = &deps;
    let handler =
        service_fn(move |req: Request| async move { Ok::<_, Error>(handle(req, deps).await) });
    pipeline_metrics::lambda::run(metrics, lambda_http::Adapter::from(handler)).await
}
