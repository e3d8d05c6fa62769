//! The pipeline's own metrics, named once: what the functions record through the `metrics`
//! facade, whichever recorder their host installed. On Lambda that is CloudWatch Embedded Metric
//! Format in the function's log ([`lambda`], feature `lambda`); in the local engine, Prometheus text
//! on `GET /metrics`. The names, units and dimensions are the same on both, and the template's
//! dashboard is checked against [`ALL`].

use metrics::Unit;

/// Images that reached `processed`.
pub const IMAGES_PROCESSED: &str = "pipeline_images_processed_total";
/// Images that ended `failed`, by [`FailureReason`].
pub const IMAGES_FAILED: &str = "pipeline_images_failed_total";
/// Wall time of one image, from reading the original to the `processed` write.
pub const PROCESSING_MS: &str = "pipeline_processing_milliseconds";
/// [`PROCESSING_MS`] over the image's megapixels (as stored, before orientation).
pub const MS_PER_MEGAPIXEL: &str = "pipeline_milliseconds_per_megapixel";
/// Bytes of the originals read by `process`.
pub const INPUT_BYTES: &str = "pipeline_input_bytes_total";
/// Bytes of the renditions written by `process`.
pub const OUTPUT_BYTES: &str = "pipeline_output_bytes_total";
/// Renditions written.
pub const RENDITIONS: &str = "pipeline_renditions_total";
/// Notices published to the topic by `notice`.
pub const NOTICES_PUBLISHED: &str = "pipeline_notices_published_total";
/// Function environments started (a Lambda cold start; the engine starts each function once).
pub const COLD_STARTS: &str = "pipeline_cold_starts_total";

/// The dimension every metric has: the function's binary name (`process`, `notice`, ...).
pub const FUNCTION: &str = "function";
/// The dimension of [`IMAGES_FAILED`]: a [`FailureReason`].
pub const REASON: &str = "reason";

/// One metric as CloudWatch and Prometheus both show it.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub dimensions: &'static [&'static str],
    pub help: &'static str,
}

impl Metric {
    /// The unit as CloudWatch names it (EMF's `Unit`).
    pub fn cloudwatch_unit(&self) -> &'static str {
        match self.unit {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
            _ => "None",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A count added to; in CloudWatch, one value per flush (take its Sum).
    Counter,
    /// Every observation; in CloudWatch, the values of a flush (take Average or percentiles).
    Histogram,
}

/// Every metric of the pipeline.
pub const ALL: &[Metric] = &[
    Metric {
        name: IMAGES_PROCESSED,
        kind: Kind::Counter,
        unit: Unit::Count,
        dimensions: &[FUNCTION],
        help: "Images that reached processed.",
    },
    Metric {
        name: IMAGES_FAILED,
        kind: Kind::Counter,
        unit: Unit::Count,
        dimensions: &[FUNCTION, REASON],
        help: "Images that ended failed, by reason.",
    },
    Metric {
        name: PROCESSING_MS,
        kind: Kind::Histogram,
        unit: Unit::Milliseconds,
        dimensions: &[FUNCTION],
        help:
            "Milliseconds to process one image, from reading the original to the processed write.",
    },
    Metric {
        name: MS_PER_MEGAPIXEL,
        kind: Kind::Histogram,
        unit: Unit::Milliseconds,
        dimensions: &[FUNCTION],
        help: "Milliseconds to process one image per megapixel of it.",
    },
    Metric {
        name: INPUT_BYTES,
        kind: Kind::Counter,
        unit: Unit::Bytes,
        dimensions: &[FUNCTION],
        help: "Bytes of originals read.",
    },
    Metric {
        name: OUTPUT_BYTES,
        kind: Kind::Counter,
        unit: Unit::Bytes,
        dimensions: &[FUNCTION],
        help: "Bytes of renditions written.",
    },
    Metric {
        name: RENDITIONS,
        kind: Kind::Counter,
        unit: Unit::Count,
        dimensions: &[FUNCTION],
        help: "Renditions written.",
    },
    Metric {
        name: NOTICES_PUBLISHED,
        kind: Kind::Counter,
        unit: Unit::Count,
        dimensions: &[FUNCTION],
        help: "Notices published to the topic.",
    },
    Metric {
        name: COLD_STARTS,
        kind: Kind::Counter,
        unit: Unit::Count,
        dimensions: &[FUNCTION],
        help: "Function environments started.",
    },
];

/// The local engine's webhook deliveries (its topics' HTTP/S subscriptions), on its `/metrics`
/// only: on AWS, SNS reports its own (`NumberOfNotificationsDelivered`, `NumberOfNotificationsFailed`).
/// Messages delivered (answered 2xx), by [`MESSAGE_TYPE`].
pub const WEBHOOK_DELIVERIES: &str = "pipeline_webhook_deliveries_total";
/// Attempts that failed: an answer outside 2xx, a timeout, a connection error.
pub const WEBHOOK_FAILURES: &str = "pipeline_webhook_failures_total";
/// Attempts scheduled again after a failure, by the subscription's delivery policy.
pub const WEBHOOK_RETRIES: &str = "pipeline_webhook_retries_total";
/// Messages given up on: the delivery policy spent, or the endpoint answered 4xx (which SNS
/// takes as a permanent failure).
pub const WEBHOOK_GIVEN_UP: &str = "pipeline_webhook_given_up_total";
/// Notices not sent to a subscription because it was not confirmed yet (SNS drops them too).
pub const WEBHOOK_UNCONFIRMED: &str = "pipeline_webhook_unconfirmed_total";
/// The dimension of the webhook metrics: `Notification` or `SubscriptionConfirmation`.
pub const MESSAGE_TYPE: &str = "type";

/// The engine's webhook metrics (not in [`ALL`]: no function records them).
pub const WEBHOOK: &[(&str, &str)] = &[
    (
        WEBHOOK_DELIVERIES,
        "Webhook messages delivered (answered 2xx).",
    ),
    (
        WEBHOOK_FAILURES,
        "Webhook delivery attempts that failed (not 2xx, timed out, or no connection).",
    ),
    (
        WEBHOOK_RETRIES,
        "Webhook delivery attempts scheduled again by the delivery policy.",
    ),
    (
        WEBHOOK_GIVEN_UP,
        "Webhook messages given up on (policy spent, or answered 4xx).",
    ),
    (
        WEBHOOK_UNCONFIRMED,
        "Notices not sent to a webhook because its subscription was not confirmed yet.",
    ),
];

/// Why an image ended `failed`: a small fixed set, so that the dimension stays cheap in CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// The bytes are no image of a supported type.
    NotAnImage,
    /// Over the pixel or the memory budget.
    TooLarge,
    /// An image that does not decode (truncated, corrupt).
    Undecodable,
    /// A rendition could not be encoded.
    Encode,
    /// The original object is gone.
    MissingOriginal,
    /// A decoder panicked.
    Crashed,
}

impl FailureReason {
    pub const ALL: [FailureReason; 6] = [
        FailureReason::NotAnImage,
        FailureReason::TooLarge,
        FailureReason::Undecodable,
        FailureReason::Encode,
        FailureReason::MissingOriginal,
        FailureReason::Crashed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::NotAnImage => "not_an_image",
            FailureReason::TooLarge => "too_large",
            FailureReason::Undecodable => "undecodable",
            FailureReason::Encode => "encode",
            FailureReason::MissingOriginal => "missing_original",
            FailureReason::Crashed => "crashed",
        }
    }
}

/// Gives every metric its unit and help text in the installed recorder (call once, after
/// installing it).
pub fn describe() {
    for m in ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.unit, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
}

/// What processing one image cost and made.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageProcessed {
    pub milliseconds: f64,
    pub pixels: u64,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub renditions: u64,
}

pub fn image_processed(function: &'static str, image: ImageProcessed) {
    let labels = [(FUNCTION, function)];
    metrics::counter!(IMAGES_PROCESSED, &labels).increment(1);
    metrics::histogram!(PROCESSING_MS, &labels).record(image.milliseconds);
    if image.pixels > 0 {
        let megapixels = image.pixels as f64 / 1e6;
        metrics::histogram!(MS_PER_MEGAPIXEL, &labels).record(image.milliseconds / megapixels);
    }
    metrics::counter!(INPUT_BYTES, &labels).increment(image.input_bytes);
    metrics::counter!(OUTPUT_BYTES, &labels).increment(image.output_bytes);
    metrics::counter!(RENDITIONS, &labels).increment(image.renditions);
}

pub fn image_failed(function: &'static str, reason: FailureReason) {
    metrics::counter!(IMAGES_FAILED, FUNCTION => function, REASON => reason.as_str()).increment(1);
}

pub fn notice_published(function: &'static str) {
    metrics::counter!(NOTICES_PUBLISHED, FUNCTION => function).increment(1);
}

/// Called where a function builds its dependencies, which its host does once per environment.
pub fn cold_start(function: &'static str) {
    metrics::counter!(COLD_STARTS, FUNCTION => function).increment(1);
}

#[cfg(feature = "lambda")]
pub mod lambda;
