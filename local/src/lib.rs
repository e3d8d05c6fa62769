//! The whole pipeline on one machine: the upload, process and notice handlers over an SQLite table
//! with a stream, files for the bucket and a mailbox for the topic, wired by template.yaml's routes and
//! event source mappings. `uploader serve` runs it; the other commands inspect and steer it.

pub mod aws_stream;
pub mod cli;
pub mod db;
pub mod dispatcher;
pub mod engine;
pub mod faults;
pub mod files;
pub mod filter;
pub mod http;
pub mod load;
pub mod mailbox;
pub mod metrics;
pub mod telemetry;
pub mod template;

pub use engine::{AwsBackend, Backend, Engine, EngineConfig};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("template.yaml: {0}")]
    Template(String),
    #[error("refusing to listen on {0}: the local engine serves loopback addresses only (127.0.0.1, ::1)")]
    NotLoopback(std::net::SocketAddr),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}
