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
        // So is `If-None-Match: *`: S3 stores the object only if the key has none, so the URL
        // writes once (a replay or the loser of two PUTs at once gets 412), and a client that
        // leaves the header out fails the signature.
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(size as i64)
            .if_none_match("*")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Presigning is offline: the SDK signs with these credentials without calling anything.
    fn store() -> S3Store {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::for_tests())
            .build();
        S3Store::new(Client::from_conf(config), "images")
    }

    #[tokio::test]
    async fn a_signed_put_writes_once_and_its_signature_covers_the_condition() {
        let signed = store()
            .signed_upload(
                "incoming/0b8ef5a4-0000-4000-8000-00000000000a",
                1234,
                "image/jpeg",
                std::time::Duration::from_secs(900),
            )
            .await
            .unwrap();
        assert_eq!(signed.method, "PUT");
        assert_eq!(
            signed.headers.get("If-None-Match").map(String::as_str),
            Some("*"),
            "{:?}",
            signed.headers
        );
        assert_eq!(
            signed.headers.get("Content-Type").map(String::as_str),
            Some("image/jpeg")
        );
        let query = signed.url.split_once('?').map_or("", |(_, q)| q);
        let signed_headers: Vec<String> = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))
            .map(|v| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .map(|v| v.split(';').map(str::to_owned).collect())
            .unwrap_or_default();
        // SigV4: S3 recomputes the signature over each header named here, with the value the
        // request carries; a request without `If-None-Match: *` does not match it.
        for header in ["content-length", "content-type", "host", "if-none-match"] {
            assert!(
                signed_headers.iter().any(|h| h == header),
                "{header} not in X-Amz-SignedHeaders {signed_headers:?}"
            );
        }
    }
}
