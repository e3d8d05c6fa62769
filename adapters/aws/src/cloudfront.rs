//! CloudFront in front of the bucket's renditions (`processed/`): links to renditions point at the
//! distribution, signed with a canned policy when the distribution trusts a key group, plain and
//! unguessable when it is public. Every other key keeps the store's own (presigned) link.
//!
//! The signed-URL format is AWS's "Create a signed URL using a canned policy" (CloudFront
//! Developer Guide): RSASSA-PKCS1-v1_5 over SHA-1 of the whitespace-free policy, base64 with
//! `+ = /` written `- _ ~`. `tests/cloudfront.rs` holds it to URLs made by botocore's
//! `CloudFrontSigner` and by the `cloudfront_sign` crate (`tests/data/cloudfront/`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha1::Sha1;

use state::{ObjectInfo, ObjectStore, SignedUpload, StateError};

/// The keys the distribution serves: its origin path is `/processed` (template.yaml,
/// `RenditionsCdn`), so `processed/<id>/<name>.<ext>` is `https://<domain>/<id>/<name>.<ext>`.
pub const RENDITIONS_PREFIX: &str = "processed/";

/// Signs CloudFront URLs with one key of the distribution's trusted key group.
#[derive(Clone)]
pub struct CloudFrontSigner {
    key_pair_id: String,
    key: SigningKey<Sha1>,
}

impl std::fmt::Debug for CloudFrontSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("CloudFrontSigner")
            .field("key_pair_id", &self.key_pair_id)
            .finish_non_exhaustive()
    }
}

impl CloudFrontSigner {
    /// `key_pair_id` is the CloudFront public key's id; `pem` its RSA private key, PKCS#8
    /// (`BEGIN PRIVATE KEY`, what `openssl genpkey` and `make deploy` write) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(key_pair_id: impl Into<String>, pem: &str) -> anyhow::Result<Self> {
        let key = match rsa::PrivateKey::from_pkcs8_pem(pem) {
            Ok(key) => key,
            Err(pkcs8) => rsa::PrivateKey::from_pkcs1_pem(pem).map_err(|pkcs1| {
                anyhow::anyhow!("not an RSA private key in PEM (PKCS#8: {pkcs8}; PKCS#1: {pkcs1})")
            })?,
        };
        Ok(Self {
            key_pair_id: key_pair_id.into(),
            key: SigningKey::new(key),
        })
    }

    /// The canned policy CloudFront checks a signed URL against: its fields in the documented
    /// order, no white space.
    pub fn canned_policy(url: &str, expires: u64) -> String {
        let resource = serde_json::to_string(url).expect("a string serialises");
        format!(
            r#"{{"Statement":[{{"Resource":{resource},"Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
        )
    }

    /// `url`, valid until `expires` (Unix seconds).
    pub fn sign(&self, url: &str, expires: u64) -> String {
        let policy = Self::canned_policy(url, expires);
        let signature = self.key.sign(policy.as_bytes()).to_bytes();
        let signature = base64::engine::general_purpose::STANDARD
            .encode(signature)
            .replace('+', "-")
            .replace('=', "_")
            .replace('/', "~");
        let separator = if url.contains('?') { '&' } else { '?' };
        format!(
            "{url}{separator}Expires={expires}&Signature={signature}&Key-Pair-Id={}",
            self.key_pair_id
        )
    }
}

/// When a signed link made at `now` (Unix seconds) expires: at the end of the next whole `ttl`
/// window, so a link is valid for at least `ttl` and at most twice that, and every link to one
/// object made within a window is the same URL, which a browser can cache across page loads.
pub fn expiry(now: u64, ttl: Duration) -> u64 {
    let ttl = ttl.as_secs().max(1);
    (now / ttl + 2) * ttl
}

/// Characters written as they are in a path segment; the rest are percent-encoded (keys are
/// server-made and never need it today, but a URL must not be able to change shape).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Signed links kept, at most, unless set: a page of items needs an RSA signature per rendition,
/// and a link is the same URL for a whole window, so repeated pages reuse them.
pub const SIGNED_LINKS_KEPT: usize = 4096;

/// An object store whose links to renditions are the CDN's; everything else is the inner store's.
#[derive(Debug)]
pub struct CdnLinks<S> {
    store: S,
    base_url: String,
    signer: Option<CloudFrontSigner>,
    ttl: Duration,
    /// Key -> (expiry, signed link), for the current windows; at most `keep` of them.
    signed: Mutex<HashMap<String, (u64, String)>>,
    keep: usize,
}

impl<S> CdnLinks<S> {
    /// `base_url` is the distribution's (`https://d111111abcdef8.cloudfront.net`). With a signer,
    /// links are signed for `ttl` to twice that ([`expiry`]); without, they never expire.
    pub fn new(
        store: S,
        base_url: impl Into<String>,
        signer: Option<CloudFrontSigner>,
        ttl: Duration,
    ) -> Self {
        Self {
            store,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            signer,
            ttl,
            signed: Mutex::new(HashMap::new()),
            keep: SIGNED_LINKS_KEPT,
        }
    }

    /// Keeps at most `keep` signed links (at least one).
    pub fn keeping(mut self, keep: usize) -> Self {
        self.keep = keep.max(1);
        self
    }

    /// The distribution's URL for a rendition's key, or `None` for any other key.
    pub fn rendition_link(&self, key: &str, now: u64) -> Option<String> {
        let path = key.strip_prefix(RENDITIONS_PREFIX)?;
        let path: Vec<String> = path
            .split('/')
            .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
            .collect();
        let url = format!("{}/{}", self.base_url, path.join("/"));
        let Some(signer) = &self.signer else {
            return Some(url);
        };
        let expires = expiry(now, self.ttl);
        let kept = |signed: &HashMap<String, (u64, String)>| {
            signed
                .get(key)
                .filter(|(at, _)| *at == expires)
                .map(|(_, link)| link.clone())
        };
        if let Some(link) = kept(&self.signed.lock().unwrap_or_else(|e| e.into_inner())) {
            return Some(link);
        }
        let link = signer.sign(&url, expires);
        let mut signed = self.signed.lock().unwrap_or_else(|e| e.into_inner());
        if signed.len() >= self.keep {
            signed.retain(|_, (at, _)| *at == expires);
            if signed.len() >= self.keep {
                signed.clear();
            }
        }
        signed.insert(key.to_owned(), (expires, link.clone()));
        Some(link)
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for CdnLinks<S> {
    fn bucket(&self) -> &str {
        self.store.bucket()
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StateError> {
        self.store.put(key, body, content_type).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StateError> {
        self.store.get(key).await
    }

    async fn link(&self, key: &str) -> Result<String, StateError> {
        let now = (state::now_ms() / 1000).max(0) as u64;
        match self.rendition_link(key, now) {
            Some(url) => Ok(url),
            None => self.store.link(key).await,
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, StateError> {
        self.store.head(key).await
    }

    async fn get_prefix(&self, key: &str, len: usize) -> Result<Bytes, StateError> {
        self.store.get_prefix(key, len).await
    }

    async fn signed_upload(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        valid_for: Duration,
    ) -> Result<SignedUpload, StateError> {
        self.store
            .signed_upload(key, size, content_type, valid_for)
            .await
    }
}
