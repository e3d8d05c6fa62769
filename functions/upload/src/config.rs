use std::time::Duration;

use config_vars::{ConfigError, Vars};
use state::DEFAULT_LINK_TTL;

use crate::{
    CursorKey, DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_UPLOAD_URL_TTL,
};

/// The upload function's settings: template.yaml's `Environment` of `UploadFunction`.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub bucket_name: String,
    pub max_upload_bytes: usize,
    pub max_object_bytes: u64,
    pub upload_url_ttl: Duration,
    pub cursor_key: CursorKey,
    /// How long links to objects (presigned GET URLs) stay valid.
    pub link_ttl: Duration,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let minutes = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
            Ok(vars
                .parsed::<u64>(key, "a whole number of minutes")?
                .map_or(default, |m| Duration::from_secs(60 * m)))
        };
        Ok(Self {
            table_name: vars.required("TABLE_NAME")?,
            bucket_name: vars.required("BUCKET_NAME")?,
            max_upload_bytes: vars.parsed_or(
                "MAX_UPLOAD_BYTES",
                DEFAULT_MAX_UPLOAD_BYTES,
                "a byte count",
            )?,
            max_object_bytes: vars.parsed_or(
                "MAX_OBJECT_BYTES",
                DEFAULT_MAX_OBJECT_BYTES,
                "a byte count",
            )?,
            upload_url_ttl: minutes("UPLOAD_URL_MINUTES", DEFAULT_UPLOAD_URL_TTL)?,
            // A secret the stack generates (Secrets Manager), handed over at deploy time; the
            // local engine's own secret locally.
            cursor_key: vars.with("CURSOR_KEY", "", |key| {
                CursorKey::new(key).ok_or("a key of at least 16 bytes is needed")
            })?,
            link_ttl: minutes("LINK_MINUTES", DEFAULT_LINK_TTL)?,
        })
    }
}
