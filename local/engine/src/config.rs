//! How the engine runs: where its data lives, the template and its parameter values, the handlers
//! it hosts, the backend, and the bounds it keeps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use embedded_adapters::sqlite::Durability;
use event_source_mapping::Backoff;

use crate::backend::Backend;
use crate::faults::Faults;
use crate::host::Registry;
use crate::server::ServerLimits;

#[derive(Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// template.yaml's text.
    pub template: String,
    /// Parameter overrides, as `sam deploy --parameter-overrides`.
    pub parameters: BTreeMap<String, String>,
    /// The handlers the engine can host, by binary name.
    pub functions: Registry,
    /// Where the topics' email subscriptions deliver locally: the `To:` of every `.eml` in the
    /// mail folder (the template's endpoint is a real inbox, given at deploy time).
    pub email: String,
    /// First pause before a failed batch or event is retried; doubles per attempt up to
    /// `max_retry_backoff`.
    pub retry_backoff: Duration,
    /// The longest pause between retries. With the defaults (2 s doubling, up to 60 s) a batch that
    /// keeps failing transiently is retried for about a minute before `process`'s
    /// MaximumRetryAttempts (5) sends it to the failure queue, and about six for `notice`'s (10):
    /// long enough to outlast a burst (file descriptors or disk briefly short, a store restarting).
    pub max_retry_backoff: Duration,
    /// What an HTTP client may cost: timeouts, connections, buffered bytes.
    pub server: ServerLimits,
    pub backend: Backend,
    /// Injected failures (tests, crash drills); none by default.
    pub faults: Faults,
    pub durability: Durability,
    /// A function's memory in MB instead of its `MemorySize` in the template, by binary name
    /// (`process`: the images in flight share it, imaging::budget).
    pub memory_mb: BTreeMap<String, u64>,
    /// Stream records the slowest mapping may have left to read before `POST` requests are
    /// refused with 503 (admission control, `crate::admission`).
    pub max_backlog: u64,
    /// Estimated seconds of work (one core's) the backlog may hold before uploads, reservations
    /// and signed PUTs are refused with 503.
    pub max_backlog_seconds: Duration,
    /// How long a request over a backlog bound waits its turn for room before it is refused.
    pub admission_wait: Duration,
    /// How an image's work is estimated from its first bytes (the CLI gives imaging's cost
    /// model); without one every item counts [`crate::admission::DEFAULT_ITEM_SECONDS`].
    pub work_estimate: Option<crate::admission::WorkEstimate>,
    /// Bytes the engine keeps free on `data_dir`'s file system: uploads and PUTs that would go
    /// below it are refused with 507 before their bodies are read (`crate::disk`).
    pub min_free_bytes: u64,
    /// Where the topics' webhooks may go, how long an attempt may take, how many at once.
    pub webhooks: crate::webhook::WebhookLimits,
}

/// Between about 700 uploads (three records each, once the engine is working them off) and 2000
/// (none processed yet): what a backlog may cost in disk and memory, whatever it holds.
pub const DEFAULT_MAX_BACKLOG: u64 = 2000;
/// A few seconds, so latency under overload stays in seconds whatever the images.
pub const DEFAULT_MAX_BACKLOG_SECONDS: Duration = Duration::from_secs(5);
/// A request over the bound waits this long for its turn: longer than a few items' work, so that a
/// client queued behind a flood's connections is let in rather than refused.
pub const DEFAULT_ADMISSION_WAIT: Duration = Duration::from_secs(2);

impl EngineConfig {
    /// An engine over `data_dir` running `template`'s functions with the handlers of `functions`,
    /// with every other setting at its default.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        template: impl Into<String>,
        functions: Registry,
    ) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            template: template.into(),
            parameters: BTreeMap::new(),
            functions,
            email: "you@example.com".into(),
            retry_backoff: Duration::from_secs(2),
            max_retry_backoff: Duration::from_secs(60),
            server: ServerLimits::DEFAULT,
            backend: Backend::Embedded,
            faults: Faults::default(),
            durability: Durability::default(),
            memory_mb: BTreeMap::new(),
            max_backlog: DEFAULT_MAX_BACKLOG,
            max_backlog_seconds: DEFAULT_MAX_BACKLOG_SECONDS,
            admission_wait: DEFAULT_ADMISSION_WAIT,
            work_estimate: None,
            min_free_bytes: crate::disk::DEFAULT_MIN_FREE_BYTES,
            webhooks: crate::webhook::WebhookLimits::default(),
        }
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff {
            first: self.retry_backoff,
            max: self.max_retry_backoff,
        }
    }
}
