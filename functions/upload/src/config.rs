use std::time::Duration;

use config_vars::{ConfigError, Vars};
use state::links::{self, Cdn};

use crate::{
    CursorKey, DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MAX_PENDING_RESERVATIONS,
    DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_UPLOAD_URL_TTL,
};

/// The upload function's settings: template.yaml's `Environment` of `UploadFunction`.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub bucket_name: String,
    pub max_upload_bytes: usize,
    pub max_object_bytes: u64,
    pub upload_url_ttl: Duration,
    /// Reservations whose URLs are still valid, at most (`MAX_PENDING_RESERVATIONS`).
    pub max_pending_reservations: usize,
    pub cursor_key: CursorKeySource,
    /// How long links to objects stay valid: presigned GET URLs for this long, signed CDN links
    /// for this to twice it.
    pub link_ttl: Duration,
    /// The CloudFront distribution in front of the renditions, if there is one.
    pub cdn: Option<Cdn>,
}

/// Where the key that signs page cursors comes from.
#[derive(Debug, Clone)]
pub enum CursorKeySource {
    /// A secret (name or ARN), read as the function starts: what the stack gives
    /// (`CURSOR_KEY_SECRET`), so the key is never in the function's configuration. Locally, the
    /// engine's own secret of that name.
    Secret(String),
    /// The key itself (`CURSOR_KEY`): for running the bootstrap outside the stack.
    Given(CursorKey),
}

impl Config {
    /// An empty value counts as unset (the template passes "" for "none"). The links' keys
    /// (`LINK_MINUTES`, `CDN_*`) are read as `state::links` reads them for every function.
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
            max_pending_reservations: vars.parsed_or(
                "MAX_PENDING_RESERVATIONS",
                DEFAULT_MAX_PENDING_RESERVATIONS,
                "a number of reservations",
            )?,
            cursor_key: cursor_key(vars)?,
            link_ttl: links::link_ttl(vars)?,
            cdn: Cdn::from_vars(vars)?,
        })
    }
}

fn cursor_key(vars: &Vars) -> Result<CursorKeySource, ConfigError> {
    const SECRET: &str = "CURSOR_KEY_SECRET";
    const KEY: &str = "CURSOR_KEY";
    let either = |rule| ConfigError::Combination {
        keys: vec![SECRET.into(), KEY.into()],
        rule,
    };
    match (vars.given(SECRET), vars.given(KEY)) {
        (Some(secret), None) => Ok(CursorKeySource::Secret(secret)),
        (None, Some(key)) => {
            CursorKey::new(key)
                .map(CursorKeySource::Given)
                .ok_or(ConfigError::SecretRefused {
                    key: KEY.into(),
                    expected: "a key of at least 16 bytes",
                })
        }
        (None, None) => Err(either(
            "neither is set; give one (the stack gives CURSOR_KEY_SECRET)",
        )),
        (Some(_), Some(_)) => Err(either("both are set; give one")),
    }
}
