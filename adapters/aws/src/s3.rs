use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

use state::{ObjectStore, StateError};

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    link_ttl: std::time::Duration,
}

impl S3Store {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            link_ttl: std::time::Duration::from_secs(15 * 60),
        }
    }

    /// How long presigned links stay valid (15 minutes unless set).
    pub fn with_link_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.link_ttl = ttl;
        self
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StateError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .with_context(|| format!("PutObject s3://{}/{key}", self.bucket))
            .map_err(StateError::Unavailable)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StateError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => {
                return Err(StateError::ObjectMissing(key.to_owned()))
            }
            Err(e) => {
                return Err(StateError::unavailable(
                    anyhow::Error::new(e).context(format!("GetObject s3://{}/{key}", self.bucket)),
                ))
            }
        };
        let body = out
            .body
            .collect()
            .await
            .with_context(|| format!("reading s3://{}/{key}", self.bucket))
            .map_err(StateError::Unavailable)?;
        Ok(body.into_bytes())
    }

    async fn link(&self, key: &str) -> Result<String, StateError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(self.link_ttl)
            .map_err(StateError::unavailable)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .with_context(|| format!("presigning GET s3://{}/{key}", self.bucket))
            .map_err(StateError::Unavailable)?;
        Ok(request.uri().to_owned())
    }
}
