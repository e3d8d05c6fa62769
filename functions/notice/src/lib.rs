//! The `notice` stream handler: for each item that just became `processed`, publish one notice
//! naming it, then move it `processed -> notified` with the message id. The notice is the mail
//! text and a JSON document for programs (docs/webhooks.md), whose renditions are links as the
//! API's items give them (the CDN's on AWS, the engine's locally).
//!
//! Publish comes before the write, so a crash between the two republishes on retry. The local
//! mailbox deduplicates on the notice's key; a standard SNS topic cannot (docs/operations.md,
//! "Failure semantics").

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use config_vars::{ConfigError, Vars};
use lambda_runtime::LambdaEvent;
use state::links::{self, Cdn};
use state::text::one_line;
use state::{
    transition, Item, ItemTable, Notice, Notifier, ObjectStore, ResourceError, Resources,
    StateError, Status,
};

/// Notices of one batch published at once. It also bounds the duplicates a crash can cause on AWS:
/// every publish that completed before the function died, and was not yet marked `notified`, is
/// sent again on the retry (standard SNS topics do not deduplicate).
pub const CONCURRENCY: usize = 8;

/// The notice function's settings: template.yaml's `Environment` of `NoticeFunction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table_name: String,
    pub topic_arn: String,
    /// The bucket the renditions are in, and how they are linked (as the upload function links
    /// them in items' `urls`).
    pub bucket_name: String,
    /// How long the notice's links stay valid where they expire.
    pub link_ttl: Duration,
    /// The CloudFront distribution in front of the renditions, if there is one.
    pub cdn: Option<Cdn>,
    /// Notices of one batch published at once: [`CONCURRENCY`], or more where the host says
    /// (`BATCH_CONCURRENCY`: the local engine works a whole batch at once).
    pub concurrency: usize,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            table_name: vars.required("TABLE_NAME")?,
            topic_arn: vars.required("TOPIC_ARN")?,
            bucket_name: vars.required("BUCKET_NAME")?,
            link_ttl: links::link_ttl(vars)?,
            cdn: Cdn::from_vars(vars)?,
            concurrency: vars
                .parsed_or("BATCH_CONCURRENCY", CONCURRENCY, "a number of records")?
                .max(CONCURRENCY),
        })
    }
}

pub struct Deps {
    pub table: Arc<dyn ItemTable>,
    pub notifier: Arc<dyn Notifier>,
    /// Links the renditions named in the notice.
    pub store: Arc<dyn ObjectStore>,
    pub concurrency: usize,
}

/// The function's name in its metrics (template.yaml's binary).
pub const FUNCTION: &str = "notice";

impl Deps {
    /// The ports `config` names, from `resources` (the SDK's on Lambda, the engine's locally),
    /// and the CDN's signing key when its links are signed, read once, now.
    pub async fn new(config: Config, resources: &dyn Resources) -> Result<Deps, ResourceError> {
        pipeline_metrics::cold_start(FUNCTION);
        Ok(Deps {
            table: resources.table(&config.table_name)?,
            notifier: resources.topic(&config.topic_arn)?,
            store: links::open_bucket(
                resources,
                &config.bucket_name,
                config.link_ttl,
                config.cdn.as_ref(),
            )
            .await?,
            concurrency: config.concurrency,
        })
    }
}

/// The handler never fails as a whole: every record's outcome is in its answer (a transient
/// error of one record is a batch item failure, retried by the mapping).
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {}

impl From<NoticeError> for lambda_runtime::Diagnostic {
    fn from(e: NoticeError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "NoticeError".into(),
            error_message: e.to_string(),
        }
    }
}

pub async fn handle(
    event: LambdaEvent<Event>,
    deps: &Deps,
) -> Result<DynamoDbEventResponse, NoticeError> {
    Ok(
        state::stream::run_batch(event.payload, deps.concurrency, |item| {
            notify_item(item, deps)
        })
        .await,
    )
}

#[tracing::instrument(skip_all, fields(image_id = %item.id))]
async fn notify_item(item: Item, deps: &Deps) -> Result<(), StateError> {
    if item.status != Status::Processed {
        tracing::debug!(status = %item.status, "not newly processed; skipped");
        return Ok(());
    }
    // A replayed or duplicate record must not mail twice: SNS cannot deduplicate, so look first.
    // What is left is a crash between the publish and the write below (docs/operations.md,
    // "Failure semantics").
    if !transition::still_at(deps.table.as_ref(), item.id, Status::Processed).await? {
        return Ok(());
    }
    let mut renditions = BTreeMap::new();
    for (name, key) in item.renditions.iter().flatten() {
        renditions.insert(name.clone(), deps.store.link(key).await?);
    }
    let notice = notice_for(&item, &renditions, chrono::Utc::now());
    let message_id = deps.notifier.publish(&notice).await?;
    pipeline_metrics::notice_published(FUNCTION);
    transition::notified(deps.table.as_ref(), item.id, message_id).await?;
    Ok(())
}

/// The notice for a processed item: its id, size, dimensions and where its renditions are
/// (`rendition_links`: name -> URL; the mail keeps naming their objects), published at
/// `notified_at`. Names are data: a dropped-in file's key is the client's, so every name is written
/// on one line in the mail, its line breaks and other controls escaped (`state::text::one_line`),
/// and cannot add lines.
pub fn notice_for(
    item: &Item,
    rendition_links: &BTreeMap<String, String>,
    notified_at: chrono::DateTime<chrono::Utc>,
) -> Notice {
    let bucket = one_line(&item.bucket_name);
    let mut body = String::new();
    let _ = writeln!(body, "Your image has been processed.\n");
    let _ = writeln!(body, "id:       {}", item.id);
    let _ = writeln!(
        body,
        "original: s3://{bucket}/{}",
        one_line(&item.object_key)
    );
    let _ = writeln!(body, "size:     {} bytes", item.size);
    if let (Some(w), Some(h), Some(f)) = (item.width, item.height, &item.format) {
        let _ = writeln!(body, "image:    {w}x{h} {}", one_line(f));
    }
    if let Some(renditions) = &item.renditions {
        let _ = writeln!(body, "renditions:");
        for (name, key) in renditions {
            let _ = writeln!(
                body,
                "  {}: s3://{bucket}/{}",
                one_line(name),
                one_line(key)
            );
        }
    }
    Notice {
        dedup_key: format!("{}/notified", item.id),
        subject: format!("Image processed: {}", item.id),
        body,
        document: document_for(item, rendition_links, notified_at),
    }
}

/// The version of [`document_for`]'s shape; a change that could break a reader bumps it.
pub const DOCUMENT_VERSION: u32 = 1;

/// The notice for programs (docs/webhooks.md): JSON, so names need no escaping beyond JSON's own.
/// `renditions` maps each rendition's name to its URL (as items' `urls.renditions` do);
/// `notified_at` is when the notice was published (the item is marked `notified` right after).
pub fn document_for(
    item: &Item,
    renditions: &BTreeMap<String, String>,
    notified_at: chrono::DateTime<chrono::Utc>,
) -> String {
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    serde_json::json!({
        "version": DOCUMENT_VERSION,
        "id": item.id.to_string(),
        "status": Status::Notified.as_str(),
        "width": item.width,
        "height": item.height,
        "format": item.format,
        "size": item.size,
        "renditions": renditions,
        "created_at": at(item.created_at),
        "notified_at": notified_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
    .to_string()
}
