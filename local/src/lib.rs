//! The whole pipeline on one machine: the upload, process and notice handlers over an SQLite table
//! with a stream, files for the bucket and a mailbox for the topic, wired by template.yaml's routes and
//! event source mappings. `uploader serve` runs it; the other commands inspect and steer it.
//!
//! With feature `aws`, the same engine runs the handlers on DynamoDB, S3 and SNS instead
//! ([`aws_backend`]); `make test` runs the pipeline suite both ways.

pub mod admission;
pub mod allocator;
#[cfg(feature = "aws")]
pub mod aws_backend;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod faults;
pub mod http;
pub mod load;
pub mod metrics;
pub mod notifications;
pub mod objects;
pub mod secret;
pub mod server;
pub mod telemetry;
pub mod template;

pub use engine::{Backend, Engine, EngineConfig};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("template.yaml: {0}")]
    Template(String),
    #[error("server limits: {0}")]
    Limits(String),
    #[error("refusing to listen on {0}: the local engine serves loopback addresses only (127.0.0.1, ::1)")]
    NotLoopback(std::net::SocketAddr),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}
