use lambda_http::{service_fn, Error, Request};
use upload::{handle, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let cfg = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let deps = upload::aws::deps(cfg, &aws).await?;
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(handle(req, deps).await)
    }))
    .await
}
