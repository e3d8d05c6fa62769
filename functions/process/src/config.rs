use config_vars::{ConfigError, Vars};
use imaging::budget::DEFAULT_FUNCTION_MEMORY_MB;
use imaging::settings::{DEFAULT_MAX_PIXELS, DEFAULT_RENDITIONS};
use imaging::{MemoryPlan, Settings};

/// The process function's settings: template.yaml's `Environment` of `ProcessFunction`, and the
/// memory Lambda gives it.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub bucket_name: String,
    pub settings: Settings,
    /// How the function's memory is shared between images (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, which
    /// Lambda, and the local engine, set from the function's `MemorySize`).
    pub memory: MemoryPlan,
    /// Records of one batch worked on at once: `BATCH_CONCURRENCY` where the host sets it (the
    /// local engine does, from the mapping's batch size), else one per core.
    pub concurrency: usize,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let max_pixels = vars.parsed_or("MAX_PIXELS", DEFAULT_MAX_PIXELS, "a number of pixels")?;
        let default_mb = DEFAULT_FUNCTION_MEMORY_MB.to_string();
        let memory = vars.with("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", &default_mb, |mb| {
            let mb: u64 = mb
                .trim()
                .parse()
                .map_err(|_| "not a number of MB".to_owned())?;
            MemoryPlan::for_function(mb).map_err(|e| e.to_string())
        })?;
        let settings = vars.with("RENDITIONS", DEFAULT_RENDITIONS, |renditions| {
            Settings::parse(renditions, max_pixels)
        })?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Config {
            table_name: vars.required("TABLE_NAME")?,
            bucket_name: vars.required("BUCKET_NAME")?,
            settings: settings.with_memory(&memory),
            memory,
            concurrency: vars.parsed_or("BATCH_CONCURRENCY", cores, "a number of records")?,
        })
    }
}
