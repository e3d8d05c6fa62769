//! The embedded backend: SQLite for the table and its stream, files for the bucket, the mail
//! folder for the topics' email subscriptions, all under the data dir.

use std::sync::Arc;

use anyhow::Context;
use embedded_adapters::files::FileStore;
use embedded_adapters::signed::UploadSigner;
use embedded_adapters::sqlite::{SqliteTable, REGION, STREAM_ARN};
use sam_template::{Resource, Template};

use super::{fixed_bucket, BackendState, Built, Local, Webhooks};
use crate::resources::{Site, ACCOUNT};
use crate::topic::{topics, Delivery};

/// The bucket's name: items and notices say `s3://images/...`.
pub const BUCKET: &str = "images";

pub(super) fn build(
    template: &Template,
    table_id: &str,
    local: &Local,
) -> Result<Built, crate::error::EngineError> {
    let mail_dir = local.data_dir.join("mail");
    let files = Arc::new(
        FileStore::new(&local.data_dir.join("objects"), BUCKET, local.fsync)
            .with_signer(UploadSigner::new(local.secret)),
    );
    std::fs::create_dir_all(&mail_dir)
        .with_context(|| format!("creating {}", mail_dir.display()))?;
    // A kill during a PUT leaves its partial file; nothing else would ever remove it.
    let removed = crate::objects::remove_partial_uploads(&files)
        .with_context(|| format!("removing partial uploads under {}", files.root().display()))?;
    if removed > 0 {
        tracing::warn!(
            files = removed,
            "partial uploads cut short by a stop removed"
        );
    }
    let table = SqliteTable::new(local.db.clone());
    let arns = template
        .resources_where(|r| matches!(r, Resource::Topic(_)).then_some(()))
        .map(|(id, _)| {
            (
                id.to_owned(),
                format!("arn:aws:sns:{REGION}:{ACCOUNT}:{id}"),
            )
        })
        .collect();
    let topics = topics(
        template,
        &Delivery {
            db: local.db,
            mail_dir: &mail_dir,
            email: local.email,
            fsync: local.fsync,
            arns: &arns,
            webhook_limits: local.webhook_limits.clone(),
            metrics: local.metrics,
        },
    )?;
    let site = Site {
        region: REGION.to_owned(),
        table: table_id.to_owned(),
        bucket: BUCKET.to_owned(),
        stream_arn: STREAM_ARN.to_owned(),
        topics: arns,
    };
    let webhooks = topics.webhook_metrics.map(|metrics| Webhooks {
        targets: topics.webhooks,
        wake: topics.wake,
        metrics,
    });
    Ok(Built {
        site,
        table: Arc::new(table.clone()),
        bucket: fixed_bucket(files.clone()),
        topics: topics.notifiers,
        webhooks,
        state: BackendState::Embedded {
            files,
            mail_dir,
            table,
        },
    })
}
