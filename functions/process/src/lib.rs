//! The `process` stream handler: for each new `uploaded` item, decode the original once, write its
//! renditions under `processed/<id>/`, and move it `uploaded -> processed` with what was learned. A
//! file that is not a decodable image (or would need more memory than the budget) moves it to
//! `failed` instead, and is never retried.
//!
//! Memory is bounded by design: each image's header says what it will cost ([`imaging::Estimate`])
//! and the image waits until that much of the [`MemoryPool`] is free, so the images in flight
//! never hold more than the pool together, however many records a batch has.

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use imaging::{probe, render_probed, ImageError, MemoryPlan, RenditionSpec, Settings};
use lambda_runtime::LambdaEvent;
use pipeline_metrics::{FailureReason, ImageProcessed};
use state::transition::Outcome;
use state::{
    transition, Item, ItemTable, ObjectStore, ProcessedFacts, ResourceError, Resources, StateError,
    Status, DEFAULT_LINK_TTL,
};

mod config;
pub use config::Config;

/// The function's name in its metrics (template.yaml's binary).
pub const FUNCTION: &str = "process";

/// The part of the function's memory that images draw their estimates from, in MiB permits.
pub struct MemoryPool {
    permits: tokio::sync::Semaphore,
    total_mib: u32,
}

impl MemoryPool {
    /// The pool of `plan`; what it keeps between images is bounded to the plan's too.
    pub fn new(plan: &MemoryPlan) -> Self {
        imaging::keep_at_most(plan.kept_bytes);
        let total_mib = u32::try_from(plan.pool_bytes >> 20).unwrap_or(u32::MAX);
        MemoryPool {
            permits: tokio::sync::Semaphore::new(total_mib as usize),
            total_mib,
        }
    }

    /// Waits until `bytes` are free, and holds them until the permit is dropped. The probe has
    /// refused anything larger than the pool, so this always returns in the end.
    async fn reserve(&self, bytes: u64) -> tokio::sync::SemaphorePermit<'_> {
        let mib = u32::try_from(bytes.div_ceil(1 << 20))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_mib.max(1));
        self.permits
            .acquire_many(mib)
            .await
            .expect("the pool is never closed")
    }
}

pub struct Deps {
    pub table: Arc<dyn ItemTable>,
    pub store: Arc<dyn ObjectStore>,
    pub settings: Arc<Settings>,
    /// Records of one batch worked on at once (decoding runs on blocking threads).
    pub concurrency: usize,
    /// Shared by every batch the function works on.
    pub memory: Arc<MemoryPool>,
}

impl Deps {
    /// The ports `config` names, from `resources` (the SDK's on Lambda, the engine's locally).
    pub fn new(config: Config, resources: &dyn Resources) -> Result<Deps, ResourceError> {
        pipeline_metrics::cold_start(FUNCTION);
        Ok(Deps {
            table: resources.table(&config.table_name)?,
            store: resources.bucket(&config.bucket_name, DEFAULT_LINK_TTL)?,
            memory: Arc::new(MemoryPool::new(&config.memory)),
            settings: Arc::new(config.settings),
            concurrency: config.concurrency,
        })
    }
}

/// The handler never fails as a whole: every record's outcome is in its answer (a transient
/// error of one record is a batch item failure, retried by the mapping).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {}

impl From<ProcessError> for lambda_runtime::Diagnostic {
    fn from(e: ProcessError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "ProcessError".into(),
            error_message: e.to_string(),
        }
    }
}

pub async fn handle(
    event: LambdaEvent<Event>,
    deps: &Deps,
) -> Result<DynamoDbEventResponse, ProcessError> {
    Ok(
        state::stream::run_batch(event.payload, deps.concurrency, |item| {
            process_item(item, deps)
        })
        .await,
    )
}

/// Where a rendition of an item is stored.
pub fn rendition_key(item: &Item, spec: &RenditionSpec) -> String {
    format!(
        "processed/{}/{}.{}",
        item.id,
        spec.name,
        spec.format.extension()
    )
}

#[tracing::instrument(skip_all, fields(image_id = %item.id))]
async fn process_item(item: Item, deps: &Deps) -> Result<(), StateError> {
    if item.status != Status::Uploaded {
        // The mapping's filter only sends new uploads; anything else is not ours.
        tracing::debug!(status = %item.status, "not an upload; skipped");
        return Ok(());
    }
    // Duplicates and replays are common on a stream; a read is much cheaper than a decode.
    if !transition::still_at(deps.table.as_ref(), item.id, Status::Uploaded).await? {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let original = match deps.store.get(&item.object_key).await {
        Ok(bytes) => bytes,
        Err(StateError::ObjectMissing(key)) => {
            let error = format!("original object {key} is missing");
            return fail(deps, &item, FailureReason::MissingOriginal, error).await;
        }
        Err(e) => return Err(e),
    };
    let input_bytes = original.len() as u64;
    let settings = deps.settings.clone();
    let small = original.len() <= SMALL_IMAGE_BYTES;
    let probed = off_the_runtime_unless(small, move || {
        probe::probe(&original, &settings).map(|header| (original, header))
    })
    .await;
    let (original, header) = match probed {
        Ok(Ok(probed)) => probed,
        Ok(Err(e)) => return fail(deps, &item, reason_of(&e), e.to_string()).await,
        Err(join) => return crashed(deps, &item, join).await,
    };
    let pixels = u64::from(header.width) * u64::from(header.height);
    let _memory = deps.memory.reserve(header.estimate.total()).await;
    let settings = deps.settings.clone();
    let small = small && u64::from(header.width) * u64::from(header.height) <= SMALL_IMAGE_PIXELS;
    let rendered =
        off_the_runtime_unless(small, move || render_probed(&original, &header, &settings)).await;
    let rendered = match rendered {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return fail(deps, &item, reason_of(&e), e.to_string()).await,
        Err(join) => return crashed(deps, &item, join).await,
    };
    let mut facts = ProcessedFacts {
        width: rendered.width,
        height: rendered.height,
        format: rendered.format.name().to_owned(),
        exif: rendered.exif,
        placeholder: rendered.placeholder,
        frames: rendered.frames,
        duration_ms: rendered.duration_ms,
        warnings: rendered.warnings,
        ..Default::default()
    };
    let mut output_bytes = 0;
    let renditions = rendered.renditions.len() as u64;
    for out in rendered.renditions {
        let key = rendition_key(&item, &out.spec);
        output_bytes += out.bytes.len() as u64;
        deps.store
            .put(&key, out.bytes, out.spec.format.content_type())
            .await?;
        facts.renditions.insert(out.spec.name.clone(), key);
    }
    if let Outcome::Applied(_) = transition::processed(deps.table.as_ref(), item.id, facts).await? {
        let image = ImageProcessed {
            milliseconds: started.elapsed().as_secs_f64() * 1e3,
            pixels,
            input_bytes,
            output_bytes,
            renditions,
        };
        pipeline_metrics::image_processed(FUNCTION, image);
    }
    Ok(())
}

/// The metrics' reason for an image error (its message goes on the item).
fn reason_of(e: &ImageError) -> FailureReason {
    match e {
        ImageError::Unsupported(_) => FailureReason::NotAnImage,
        ImageError::TooManyPixels { .. }
        | ImageError::TooManyFrames { .. }
        | ImageError::OverBudget { .. } => FailureReason::TooLarge,
        ImageError::Decode(_) => FailureReason::Undecodable,
        ImageError::Encode { .. } => FailureReason::Encode,
    }
}

/// Images this small are probed and rendered in place, on the runtime's thread: that takes well
/// under a millisecond, less than the two context switches of a blocking thread cost under load.
const SMALL_IMAGE_BYTES: usize = 64 * 1024;
const SMALL_IMAGE_PIXELS: u64 = 256 * 256;

/// Runs `f` on a blocking thread, or in place when `in_place`; a panic (a decoder's) is caught
/// either way, so one image cannot take the batch down.
async fn off_the_runtime_unless<T: Send + 'static>(
    in_place: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    if in_place {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .map_err(|panic| panic_message(&*panic));
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|join| join.to_string())
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    format!("panicked: {what}")
}

async fn crashed(deps: &Deps, item: &Item, join: String) -> Result<(), StateError> {
    let error = format!("decoder crashed: {join}");
    fail(deps, item, FailureReason::Crashed, error).await
}

async fn fail(
    deps: &Deps,
    item: &Item,
    reason: FailureReason,
    error: String,
) -> Result<(), StateError> {
    // The error may quote the object's key or its metadata, which are the client's.
    tracing::info!(error = %state::text::one_line(&error), reason = reason.as_str(), "image rejected");
    let outcome = transition::failed(deps.table.as_ref(), item.id, Status::Uploaded, error).await?;
    if let Outcome::Applied(_) = outcome {
        pipeline_metrics::image_failed(FUNCTION, reason);
    }
    Ok(())
}
