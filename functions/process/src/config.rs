use imaging::budget::DEFAULT_FUNCTION_MEMORY_MB;
use imaging::settings::{DEFAULT_MAX_PIXELS, DEFAULT_RENDITIONS};
use imaging::{MemoryPlan, Settings};

use crate::ProcessError;

/// The process function's settings, from its Lambda environment (template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub bucket_name: String,
    pub settings: Settings,
    /// How the function's memory is shared between images (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, which
    /// Lambda sets from the function's `MemorySize`).
    pub memory: MemoryPlan,
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
        let memory_mb = match std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
            Ok(v) => v.parse().map_err(|_| {
                ProcessError::Config(format!(
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE={v:?} is not a number"
                ))
            })?,
            Err(_) => DEFAULT_FUNCTION_MEMORY_MB,
        };
        let memory = MemoryPlan::for_function(memory_mb)?;
        Ok(Config {
            table_name: var("TABLE_NAME")?,
            bucket_name: var("BUCKET_NAME")?,
            settings: Settings::parse(&renditions, max_pixels)?.with_memory(&memory),
            memory,
        })
    }
}
