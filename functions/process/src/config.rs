use imaging::settings::{DEFAULT_MAX_PIXELS, DEFAULT_RENDITIONS};
use imaging::Settings;

use crate::ProcessError;

/// The process function's settings, from its Lambda environment (template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub bucket_name: String,
    pub settings: Settings,
}

impl Config {
    pub fn from_env() -> Result<Self, ProcessError> {
        let var =
            |k: &str| std::env::var(k).map_err(|_| ProcessError::Config(format!("{k} is not set")));
        let renditions = std::env::var("RENDITIONS").unwrap_or_else(|_| DEFAULT_RENDITIONS.into());
        let max_pixels = match std::env::var("MAX_PIXELS") {
            Ok(v) => v
                .parse()
                .map_err(|_| ProcessError::Config(format!("MAX_PIXELS={v:?} is not a number")))?,
            Err(_) => DEFAULT_MAX_PIXELS,
        };
        Ok(Config {
            table_name: var("TABLE_NAME")?,
            bucket_name: var("BUCKET_NAME")?,
            settings: Settings::parse(&renditions, max_pixels)?,
        })
    }
}
