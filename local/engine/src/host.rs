//! The handlers the engine can host, by the binary name template.yaml gives each function
//! (`Metadata.BuildProperties.Binary`). Whoever starts the engine registers them (the `uploader`
//! registers the pipeline's five); the engine attaches each template function's handler to its
//! event sources and has no code of its own for any of them.
//!
//! A registration builds the handler from the function's configuration (its template
//! `Environment`, resolved, as [`Vars`]) and the engine's [`Resources`], as the function's own
//! `main.rs` does from the process environment and the SDK's. Building is asynchronous, as a cold
//! start is: a function may read its secrets then.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use config_vars::Vars;
use event_source_mapping::async_invoke::AsyncFunction;
use event_source_mapping::queue::QueueFunction;
use event_source_mapping::StreamFunction;
use futures::future::BoxFuture;
use state::Resources;

use crate::error::HostError;

/// A function behind the API's routes, invoked with each request as API Gateway sends it.
#[async_trait]
pub trait ApiFunction: Send + Sync {
    /// The largest request body it takes: a longer one is answered 413 before it is read.
    fn max_body_bytes(&self) -> usize;
    async fn invoke(
        &self,
        request: lambda_http::Request,
    ) -> lambda_http::Response<lambda_http::Body>;
}

/// A built handler, by the kind of event it takes.
#[derive(Clone)]
pub enum Handler {
    /// `Type: Api` events.
    Api(Arc<dyn ApiFunction>),
    /// `Type: DynamoDB` events: batches of stream records.
    Stream(Arc<dyn StreamFunction>),
    /// `Type: S3` events: one bucket notification per invocation, asynchronously.
    Async(Arc<dyn AsyncFunction>),
    /// `Type: SQS` events: batches of queue messages.
    Queue(Arc<dyn QueueFunction>),
}

impl Handler {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Handler::Api(_) => "Api",
            Handler::Stream(_) => "DynamoDB",
            Handler::Async(_) => "S3",
            Handler::Queue(_) => "SQS",
        }
    }
}

/// Builds a handler from its function's configuration and the engine's resources.
pub type Build = dyn Fn(Vars<'static>, Arc<dyn Resources>) -> BoxFuture<'static, Result<Handler, HostError>>
    + Send
    + Sync
    + 'static;

/// The handlers an engine can host, by binary name.
#[derive(Clone, Default)]
pub struct Registry {
    builds: BTreeMap<String, Arc<Build>>,
}

impl Registry {
    /// Registers how to build the handler of the functions built from `binary`.
    pub fn register<F, Built>(&mut self, binary: impl Into<String>, build: F) -> &mut Registry
    where
        F: Fn(Vars<'static>, Arc<dyn Resources>) -> Built + Send + Sync + 'static,
        Built: Future<Output = Result<Handler, HostError>> + Send + 'static,
    {
        self.builds.insert(
            binary.into(),
            Arc::new(move |vars, resources| Box::pin(build(vars, resources))),
        );
        self
    }

    pub(crate) async fn build(
        &self,
        binary: &str,
        vars: Vars<'static>,
        resources: Arc<dyn Resources>,
    ) -> Result<Handler, HostError> {
        let build = self
            .builds
            .get(binary)
            .ok_or_else(|| HostError::NoHandler {
                binary: binary.to_owned(),
                known: self.builds.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        build(vars, resources).await
    }
}
