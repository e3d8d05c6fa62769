//! The Lambda bootstraps' recorder: CloudWatch Embedded Metric Format, one JSON document per
//! dimension set written to stdout (the function's log) after each invocation, which CloudWatch
//! Logs turns into metrics in the namespace `METRICS_NAMESPACE`. Writing logs is all it needs of IAM.

use config_vars::{ConfigError, Vars};
pub use metrics_cloudwatch_embedded::lambda::service::run;
pub use metrics_cloudwatch_embedded::Collector;

/// The CloudWatch namespace of the metrics; the template sets it to the stack's name.
pub const NAMESPACE_VAR: &str = "METRICS_NAMESPACE";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the metrics recorder could not be installed: {0}")]
    Install(String),
}

/// Installs the EMF recorder as the process's `metrics` recorder, in the namespace `vars` name.
/// Pass the collector to [`run`], which flushes it after every invocation.
pub fn install(vars: &Vars) -> Result<&'static Collector, MetricsError> {
    let namespace = vars.required(NAMESPACE_VAR)?;
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .init()
        .map_err(|e| MetricsError::Install(e.to_string()))?;
    crate::describe();
    Ok(collector)
}
