//! The engine's backends: where the table, bucket and topics are. Each gives the physical names of
//! the template's resources ([`Site`]), the ports behind them, and what it runs beside the
//! functions: the embedded one expires reservations and serves its bucket over HTTP; the AWS one
//! mirrors DynamoDB Streams into the local stream and takes the bucket's notifications from SQS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use embedded_adapters::files::FileStore;
use embedded_adapters::sqlite::{Database, SqliteTable};
use sam_template::{Resource, Template, TemplateError};
use state::{ItemTable, Notifier};

#[cfg(feature = "aws")]
pub mod aws;
mod embedded;
#[cfg(feature = "aws")]
pub mod provision;

use crate::resources::{BucketPort, Site};

/// Where the table, bucket and topic are.
#[derive(Clone, Default)]
pub enum Backend {
    /// SQLite, files and a mailbox under the data dir.
    #[default]
    Embedded,
    /// DynamoDB (and its stream), S3 and SNS through the AWS SDK; the data dir keeps only the
    /// mappings' checkpoints, the stream mirror and the failure queue.
    #[cfg(feature = "aws")]
    Aws(Box<aws::AwsBackend>),
}

/// A backend, built.
pub(crate) struct Built {
    pub site: Site,
    pub table: Arc<dyn ItemTable>,
    pub bucket: Box<BucketPort>,
    /// Each template topic's port, by logical id.
    pub topics: BTreeMap<String, Arc<dyn Notifier>>,
    /// The topics' HTTP/S subscriptions, if any (embedded backend).
    pub webhooks: Option<Webhooks>,
    pub state: BackendState,
}

/// What the engine needs to deliver the topics' webhooks.
pub(crate) struct Webhooks {
    pub targets: Vec<crate::webhook::Target>,
    pub wake: crate::webhook::Wake,
    pub metrics: crate::webhook::WebhookMetrics,
}

/// What a backend keeps beside its ports.
pub(crate) enum BackendState {
    Embedded {
        /// The bucket, which `GET /objects/...` serves and signed URLs `PUT` to.
        files: Arc<FileStore>,
        mail_dir: PathBuf,
        /// The table, whose expired reservations the engine deletes (DynamoDB's TTL on AWS).
        table: SqliteTable,
    },
    #[cfg(feature = "aws")]
    Aws {
        mirror: Arc<aws::Mirror>,
        bucket_queue: Option<aws::BucketEventQueue>,
    },
}

/// What the embedded backend needs from the engine's settings.
pub(crate) struct Local<'a> {
    pub data_dir: &'a Path,
    pub db: &'a Database,
    pub email: &'a str,
    pub fsync: bool,
    pub secret: &'a [u8],
    pub webhook_limits: crate::webhook::WebhookLimits,
    pub metrics: &'a crate::metrics::Metrics,
}

/// The one resource of a kind the engine runs (a table, a bucket): its logical id.
fn the_one(
    template: &Template,
    kind: &str,
    is: impl Fn(&Resource) -> bool,
) -> Result<String, TemplateError> {
    let ids: Vec<&str> = template
        .resources_where(|r| is(r).then_some(()))
        .map(|(id, _)| id)
        .collect();
    match ids.as_slice() {
        [one] => Ok((*one).to_owned()),
        _ => Err(TemplateError::NotEmulated {
            at: "Resources".into(),
            setting: format!("{} {kind}s ({})", ids.len(), ids.join(", ")),
            why: format!("the local engine runs exactly one {kind}"),
        }),
    }
}

pub(crate) fn build(
    backend: Backend,
    template: &Template,
    local: &Local,
) -> Result<Built, crate::error::EngineError> {
    let table_id = the_one(template, "table", |r| matches!(r, Resource::Table(_)))?;
    the_one(template, "bucket", |r| matches!(r, Resource::Bucket(_)))?;
    match backend {
        Backend::Embedded => embedded::build(template, &table_id, local),
        #[cfg(feature = "aws")]
        Backend::Aws(aws) => Ok(aws::build(*aws, template, local.db)),
    }
}

impl BackendState {
    /// The embedded bucket, if this backend has one.
    pub fn files(&self) -> Option<&Arc<FileStore>> {
        match self {
            BackendState::Embedded { files, .. } => Some(files),
            #[cfg(feature = "aws")]
            BackendState::Aws { .. } => None,
        }
    }

    /// Where the data is, as `serve` says it.
    pub fn describe(&self, data_dir: &Path) -> String {
        match self {
            BackendState::Embedded { mail_dir, .. } => format!(
                "Data in {} (mail in {})",
                data_dir.display(),
                mail_dir.display()
            ),
            #[cfg(feature = "aws")]
            BackendState::Aws { .. } => format!(
                "Table, bucket and topic on AWS; checkpoints in {}",
                data_dir.display()
            ),
        }
    }

    /// Deletes up to `at_most` of the reservations whose TTL passed before `now_s`, as DynamoDB's
    /// TTL does (on AWS, DynamoDB does it), in one short write. Returns how many.
    pub async fn expire(&self, now_s: i64, at_most: usize) -> anyhow::Result<usize> {
        match self {
            BackendState::Embedded { table, .. } => Ok(table.expire(now_s, at_most).await?),
            #[cfg(feature = "aws")]
            BackendState::Aws { .. } => Ok(0),
        }
    }

    /// What the backend runs beside the functions: on AWS, the stream's mirror and the bucket's
    /// notification queue.
    pub fn runners(
        &self,
        bucket: &Arc<crate::bucket::BucketEvents>,
    ) -> Vec<Arc<dyn crate::runner::Runner>> {
        match self {
            BackendState::Embedded { .. } => {
                let _ = bucket;
                Vec::new()
            }
            #[cfg(feature = "aws")]
            BackendState::Aws {
                mirror,
                bucket_queue,
            } => {
                let mut runners: Vec<Arc<dyn crate::runner::Runner>> =
                    vec![Arc::new(aws::MirrorRunner(mirror.clone()))];
                if let Some(queue) = bucket_queue {
                    runners.push(Arc::new(aws::BucketQueueRunner {
                        queue: queue.clone(),
                        bucket: bucket.clone(),
                    }));
                }
                runners
            }
        }
    }

    /// Reads what DynamoDB Streams has that the mirror does not; 0 when embedded.
    pub async fn poll_mirror(&self) -> anyhow::Result<usize> {
        match self {
            BackendState::Embedded { .. } => Ok(0),
            #[cfg(feature = "aws")]
            BackendState::Aws { mirror, .. } => mirror.poll().await,
        }
    }
}

/// How long links stay valid is the S3 store's business; the embedded bucket's links do not
/// expire.
pub(crate) fn fixed_bucket(store: Arc<dyn state::ObjectStore>) -> Box<BucketPort> {
    Box::new(move |_: Duration| store.clone())
}
