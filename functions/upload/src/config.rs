use anyhow::Context;

use crate::{
    CursorKey, DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_UPLOAD_URL_TTL,
};

/// The upload function's settings, from its Lambda environment (template.yaml).
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub bucket_name: String,
    pub max_upload_bytes: usize,
    pub max_object_bytes: u64,
    pub upload_url_ttl: std::time::Duration,
    pub cursor_key: CursorKeySource,
    /// How long links to objects stay valid: presigned GET URLs for this long, signed CDN links
    /// for this to twice it.
    pub link_ttl: std::time::Duration,
    /// The CloudFront distribution in front of the renditions, if there is one.
    pub cdn: Option<Cdn>,
}

/// Where the key that signs page cursors comes from.
#[derive(Debug, Clone)]
pub enum CursorKeySource {
    /// A Secrets Manager secret (name or ARN), read at cold start: what the stack gives
    /// (`CURSOR_KEY_SECRET`), so the key is never in the function's configuration.
    Secret(String),
    /// The key itself (`CURSOR_KEY`): for running the bootstrap outside the stack.
    Given(CursorKey),
}

/// The distribution that serves renditions (`CDN_URL`, e.g. `https://d111111abcdef8.cloudfront.net`).
#[derive(Debug, Clone)]
pub struct Cdn {
    pub url: String,
    /// Set when the distribution only serves signed URLs (`CDN_KEY_PAIR_ID`,
    /// `CDN_SIGNING_KEY_SECRET`); unset, its URLs are plain and never expire.
    pub signing: Option<CdnSigning>,
}

#[derive(Debug, Clone)]
pub struct CdnSigning {
    /// The CloudFront public key's id, in the distribution's trusted key group.
    pub key_pair_id: String,
    /// The Secrets Manager secret holding its private key (PEM), read at cold start.
    pub private_key_secret: String,
}

/// A variable's value, absent when unset or empty (the template passes "" for "none").
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            table_name: std::env::var("TABLE_NAME").context("TABLE_NAME is not set")?,
            bucket_name: std::env::var("BUCKET_NAME").context("BUCKET_NAME is not set")?,
            max_upload_bytes: match std::env::var("MAX_UPLOAD_BYTES") {
                Ok(v) => v
                    .parse()
                    .with_context(|| format!("MAX_UPLOAD_BYTES={v:?} is not a byte count"))?,
                Err(_) => DEFAULT_MAX_UPLOAD_BYTES,
            },
            max_object_bytes: match std::env::var("MAX_OBJECT_BYTES") {
                Ok(v) => v
                    .parse()
                    .with_context(|| format!("MAX_OBJECT_BYTES={v:?} is not a byte count"))?,
                Err(_) => DEFAULT_MAX_OBJECT_BYTES,
            },
            upload_url_ttl: match std::env::var("UPLOAD_URL_MINUTES") {
                Ok(v) => std::time::Duration::from_secs(
                    60 * v
                        .parse::<u64>()
                        .with_context(|| format!("UPLOAD_URL_MINUTES={v:?} is not a number"))?,
                ),
                Err(_) => DEFAULT_UPLOAD_URL_TTL,
            },
            cursor_key: match (var("CURSOR_KEY_SECRET"), var("CURSOR_KEY")) {
                (Some(secret), None) => CursorKeySource::Secret(secret),
                (None, Some(key)) => CursorKeySource::Given(
                    CursorKey::new(key).context("CURSOR_KEY must be at least 16 bytes")?,
                ),
                (None, None) => anyhow::bail!("CURSOR_KEY_SECRET (or CURSOR_KEY) is not set"),
                (Some(_), Some(_)) => {
                    anyhow::bail!("CURSOR_KEY_SECRET and CURSOR_KEY are both set: give one")
                }
            },
            link_ttl: std::time::Duration::from_secs(
                60 * match std::env::var("LINK_MINUTES") {
                    Ok(v) => v
                        .parse::<u64>()
                        .with_context(|| format!("LINK_MINUTES={v:?} is not a number"))?,
                    Err(_) => 15,
                },
            ),
            cdn: match var("CDN_URL") {
                None => None,
                Some(url) => Some(Cdn {
                    url,
                    signing: match (var("CDN_KEY_PAIR_ID"), var("CDN_SIGNING_KEY_SECRET")) {
                        (Some(key_pair_id), Some(private_key_secret)) => Some(CdnSigning {
                            key_pair_id,
                            private_key_secret,
                        }),
                        (None, None) => None,
                        _ => anyhow::bail!(
                            "CDN_KEY_PAIR_ID and CDN_SIGNING_KEY_SECRET go together: both, or neither"
                        ),
                    },
                }),
            },
        })
    }
}
