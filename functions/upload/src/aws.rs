//! The function's wiring on AWS (feature `lambda`): the clients, and the keys it reads from Secrets
//! Manager once, at cold start, for the life of the execution environment.

use std::sync::Arc;

use anyhow::Context;
use aws_adapters::{CdnLinks, CloudFrontSigner, DynamoTable, S3Store, SecretsManager};
use state::ObjectStore;

use crate::{Config, CursorKey, CursorKeySource, Deps};

/// The handler's dependencies for `cfg`: the table, the bucket (its renditions linked through the
/// CDN when there is one), and the keys. Both secrets are read at once.
pub async fn deps(cfg: Config, aws: &aws_config::SdkConfig) -> anyhow::Result<Deps> {
    let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(aws));
    let cursor_key = async {
        match &cfg.cursor_key {
            CursorKeySource::Given(key) => Ok(key.clone()),
            CursorKeySource::Secret(id) => CursorKey::new(secrets.string(id).await?)
                .with_context(|| format!("the cursor key in {id} must be at least 16 bytes")),
        }
    };
    let signer = async {
        match cfg.cdn.as_ref().and_then(|cdn| cdn.signing.as_ref()) {
            None => Ok(None),
            Some(signing) => {
                let pem = secrets.string(&signing.private_key_secret).await?;
                CloudFrontSigner::from_pem(&signing.key_pair_id, &pem)
                    .with_context(|| format!("the CDN key in {}", signing.private_key_secret))
                    .map(Some)
            }
        }
    };
    let (cursor_key, signer) = tokio::try_join!(cursor_key, signer)?;

    let bucket =
        S3Store::new(aws_sdk_s3::Client::new(aws), cfg.bucket_name).with_link_ttl(cfg.link_ttl);
    let store: Arc<dyn ObjectStore> = match cfg.cdn {
        Some(cdn) => Arc::new(CdnLinks::new(bucket, cdn.url, signer, cfg.link_ttl)),
        None => Arc::new(bucket),
    };
    Ok(Deps {
        table: Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(aws),
            cfg.table_name,
        )),
        store,
        max_upload_bytes: cfg.max_upload_bytes,
        max_object_bytes: cfg.max_object_bytes,
        upload_url_ttl: cfg.upload_url_ttl,
        cursor_key,
    })
}
