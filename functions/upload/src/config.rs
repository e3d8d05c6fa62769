use anyhow::Context;

use crate::DEFAULT_MAX_UPLOAD_BYTES;

/// The upload function's settings, from its Lambda environment (template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub bucket_name: String,
    pub max_upload_bytes: usize,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            table_name: std::env::var("TABLE_NAME").context("TABLE_NAME is not set")?,
            bucket_name: std::env::var("BUCKET_NAME").context("BUCKET_NAME is not set")?,
            max_upload_bytes: match std::env::var("MAX_UPLOAD_BYTES") {
                Ok(v) => v
                    .parse()
                    .with_context(|| format!("MAX_UPLOAD_BYTES={v:?} is not a byte count"))?,
                Err(_) => DEFAULT_MAX_UPLOAD_BYTES,
            },
        })
    }
}
