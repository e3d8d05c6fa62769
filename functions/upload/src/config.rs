use anyhow::Context;

use crate::{
    CursorKey, DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_UPLOAD_URL_TTL,
};

/// The upload function's settings, from its Lambda environment (template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub bucket_name: String,
    pub max_upload_bytes: usize,
    pub max_object_bytes: u64,
    pub upload_url_ttl: std::time::Duration,
    pub cursor_key: CursorKey,
    /// How long links to objects (presigned GET URLs) stay valid.
    pub link_ttl: std::time::Duration,
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
            max_object_bytes: match std::env::var("MAX_OBJECT_BYTES") {
                Ok(v) => v
                    .parse()
                    .with_context(|| format!("MAX_OBJECT_BYTES={v:?} is not a byte count"))?,
                Err(_) => DEFAULT_MAX_OBJECT_BYTES,
            },
            upload_url_ttl: match std::env::var("UPLOAD_URL_MINUTES") {
                Ok(v) => std::time::Duration::from_secs(
                    60 * v
                        .parse::<u64>()
                        .with_context(|| format!("UPLOAD_URL_MINUTES={v:?} is not a number"))?,
                ),
                Err(_) => DEFAULT_UPLOAD_URL_TTL,
            },
            // A secret the stack generates (Secrets Manager), handed over at deploy time.
            cursor_key: CursorKey::new(
                std::env::var("CURSOR_KEY").context("CURSOR_KEY is not set")?,
            )
            .context("CURSOR_KEY must be at least 16 bytes")?,
            link_ttl: std::time::Duration::from_secs(
                60 * match std::env::var("LINK_MINUTES") {
                    Ok(v) => v
                        .parse::<u64>()
                        .with_context(|| format!("LINK_MINUTES={v:?} is not a number"))?,
                    Err(_) => 15,
                },
            ),
        })
    }
}
