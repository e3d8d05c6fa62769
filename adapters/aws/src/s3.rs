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
}

impl S3Store {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
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
}
