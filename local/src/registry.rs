//! The handlers the `uploader` hosts, by the binary name template.yaml gives each function. Each
//! is built as its Lambda `main.rs` builds it: `Config::from_vars` of its configuration, then
//! `Deps::new` over the resources it names (upload's and notice's read their secrets, so they are
//! awaited); only the event types differ (the engine's traits instead of the Lambda runtime's
//! loop).

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::s3::S3Event;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::streams::DynamoDbEventResponse;
use event_source_mapping::async_invoke::AsyncFunction;
use event_source_mapping::queue::QueueFunction;
use event_source_mapping::{FunctionError, StreamFunction};
use lambda_runtime::{Diagnostic, LambdaEvent};
use local_engine::{ApiFunction, Handler, Registry};

/// upload, process, notice, ingest and failures.
pub fn functions() -> Registry {
    let mut registry = Registry::default();
    registry
        .register("upload", |vars, resources| async move {
            let config = upload::Config::from_vars(&vars)?;
            let deps = upload::Deps::new(config, resources.as_ref()).await?;
            Ok(Handler::Api(Arc::new(Upload(deps))))
        })
        .register("process", |vars, resources| async move {
            let deps = process::Deps::new(process::Config::from_vars(&vars)?, resources.as_ref())?;
            Ok(Handler::Stream(Arc::new(Process(deps))))
        })
        .register("notice", |vars, resources| async move {
            let config = notice::Config::from_vars(&vars)?;
            let deps = notice::Deps::new(config, resources.as_ref()).await?;
            Ok(Handler::Stream(Arc::new(Notice(deps))))
        })
        .register("ingest", |vars, resources| async move {
            let deps = ingest::Deps::new(ingest::Config::from_vars(&vars)?, resources.as_ref())?;
            Ok(Handler::Async(Arc::new(Ingest(deps))))
        })
        .register("failures", |vars, resources| async move {
            let deps =
                failures::Deps::new(failures::Config::from_vars(&vars)?, resources.as_ref())?;
            Ok(Handler::Queue(Arc::new(Failures(deps))))
        });
    registry
}

/// A handler's error as the Runtime API's `/error` carries it.
fn function_error(e: impl Into<Diagnostic>) -> FunctionError {
    let d = e.into();
    FunctionError::new(d.error_type, d.error_message)
}

fn event<T>(payload: T) -> LambdaEvent<T> {
    LambdaEvent::new(payload, lambda_runtime::Context::default())
}

struct Upload(upload::Deps);

#[async_trait]
impl ApiFunction for Upload {
    fn max_body_bytes(&self) -> usize {
        self.0.max_upload_bytes
    }

    async fn invoke(
        &self,
        request: lambda_http::Request,
    ) -> lambda_http::Response<lambda_http::Body> {
        upload::handle(request, &self.0).await
    }
}

struct Process(process::Deps);

#[async_trait]
impl StreamFunction for Process {
    async fn invoke(&self, e: Event) -> Result<DynamoDbEventResponse, FunctionError> {
        process::handle(event(e), &self.0)
            .await
            .map_err(function_error)
    }
}

struct Notice(notice::Deps);

#[async_trait]
impl StreamFunction for Notice {
    async fn invoke(&self, e: Event) -> Result<DynamoDbEventResponse, FunctionError> {
        notice::handle(event(e), &self.0)
            .await
            .map_err(function_error)
    }
}

struct Ingest(ingest::Deps);

#[async_trait]
impl AsyncFunction for Ingest {
    async fn invoke(&self, e: S3Event) -> Result<(), FunctionError> {
        ingest::handle(event(e), &self.0)
            .await
            .map(|_| ())
            .map_err(function_error)
    }
}

struct Failures(failures::Deps);

#[async_trait]
impl QueueFunction for Failures {
    async fn invoke(&self, e: SqsEvent) -> Result<SqsBatchResponse, FunctionError> {
        failures::handle(event(e), &self.0)
            .await
            .map_err(function_error)
    }
}
