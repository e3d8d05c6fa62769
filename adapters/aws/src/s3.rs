use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

use state::{ObjectInfo, ObjectStore, SignedUpload, StateError};

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

    async fn head(&self, key: &str) -> Result<ObjectInfo, StateError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(ObjectInfo {
                size: out.content_length.unwrap_or_default().max(0) as u64,
            }),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => {
                Err(StateError::ObjectMissing(key.to_owned()))
            }
            Err(e) => Err(StateError::unavailable(
                anyhow::Error::new(e).context(format!("HeadObject s3://{}/{key}", self.bucket)),
            )),
        }
    }

    async fn get_prefix(&self, key: &str, len: usize) -> Result<Bytes, StateError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", len - 1))
            .send()
            .await
        {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => {
                return Err(StateError::ObjectMissing(key.to_owned()))
            }
            // An empty object has no byte 0: S3 answers 416.
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 416 => {
                return Ok(Bytes::new())
            }
            Err(e) => {
                return Err(StateError::unavailable(
                    anyhow::Error::new(e)
                        .context(format!("GetObject (range) s3://{}/{key}", self.bucket)),
                ))
            }
        };
        let body = out
            .body
            .collect()
            .await
            .with_context(|| format!("reading s3://{}/{key}", self.bucket))
            .map_err(StateError::Unavailable)?
            .into_bytes();
        // A server that ignores the range still gives only what was asked for.
        Ok(body.slice(..len.min(body.len())))
    }

    async fn signed_upload(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        valid_for: std::time::Duration,
    ) -> Result<SignedUpload, StateError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(valid_for)
            .map_err(StateError::unavailable)?;
        // Type and length are signed: S3 refuses a PUT whose Content-Type or Content-Length differ.
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(size as i64)
            .presigned(config)
            .await
            .with_context(|| format!("presigning PUT s3://{}/{key}", self.bucket))
            .map_err(StateError::Unavailable)?;
        let headers = request
            .headers()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
            .map(|(name, value)| (canonical(name), value.to_owned()))
            .collect();
        Ok(SignedUpload {
            url: request.uri().to_owned(),
            method: "PUT",
            headers,
            expires_at: state::now_ms() + valid_for.as_millis() as i64,
        })
    }
}

/// `content-type` as `Content-Type`: how clients and the docs write header names.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}
