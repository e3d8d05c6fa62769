//! The object store as files: `DATA_DIR/objects/<bucket>/<key>`, each written to a temporary file,
//! synced, then renamed into place, so a reader (or a crash) never sees half an object.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::utf8_percent_encode;
use state::{ObjectInfo, ObjectStore, SignedUpload, StateError};

use crate::in_place;
use crate::signed::{UploadGrant, UploadSigner};

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    bucket: String,
    fsync: bool,
    /// Where the engine serves objects (`http://127.0.0.1:3000`), once it listens.
    public: std::sync::Arc<std::sync::RwLock<String>>,
    /// Signs the PUT URLs of reservations; none, none given out.
    signer: Option<UploadSigner>,
}

impl FileStore {
    /// `fsync`: sync each object before it is renamed into place (power-cut durability).
    pub fn new(objects_dir: &Path, bucket: impl Into<String>, fsync: bool) -> Self {
        let bucket = bucket.into();
        Self {
            root: objects_dir.join(&bucket),
            bucket,
            fsync,
            public: Default::default(),
            signer: None,
        }
    }

    /// Gives out signed PUT URLs, signed by `signer`.
    pub fn with_signer(mut self, signer: UploadSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    pub fn signer(&self) -> Option<&UploadSigner> {
        self.signer.as_ref()
    }

    /// Whether writes are synced before they are renamed into place.
    pub fn fsync(&self) -> bool {
        self.fsync
    }

    /// The engine's base URL, which links start with (`GET <base>/objects/<key>`).
    pub fn set_public_url(&self, base: &str) {
        *self.public.write().expect("public url lock") = base.trim_end_matches('/').to_owned();
    }

    /// The bucket's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file behind `key`. Keys are made by the functions, but a key that would leave the
    /// bucket's folder is refused all the same.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StateError> {
        let rel = Path::new(key);
        let plain = !key.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(StateError::unavailable(anyhow::anyhow!(
                "object key {key:?} is not a plain relative path"
            )));
        }
        Ok(self.root.join(rel))
    }
}

#[async_trait]
impl ObjectStore for FileStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, key: &str, body: Bytes, _content_type: &str) -> Result<(), StateError> {
        let path = self.path_of(key)?;
        let fsync = self.fsync;
        let small = !fsync && body.len() as u64 <= in_place::IN_PLACE_BYTES;
        in_place::run(small, move || -> anyhow::Result<()> {
            let dir = path.parent().context("object path has a parent")?;
            // Most folders exist already: creating them first cost a mkdir and a stat per object.
            let mut tmp = match tempfile::NamedTempFile::new_in(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    tempfile::NamedTempFile::new_in(dir)?
                }
                made => made?,
            };
            tmp.write_all(&body)?;
            if fsync {
                tmp.as_file().sync_all()?;
            }
            tmp.persist(&path)
                .with_context(|| format!("renaming into {}", path.display()))?;
            Ok(())
        })
        .await
        .map_err(|e| StateError::Unavailable(e.context(format!("writing object {key}"))))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StateError> {
        use std::io::Read;
        let path = self.path_of(key)?;
        // Opened in place (microseconds); read in place when small, else on a blocking thread.
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::ObjectMissing(key.to_owned()))
            }
            Err(e) => {
                return Err(StateError::unavailable(
                    anyhow::Error::new(e).context(format!("opening object {key}")),
                ))
            }
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        in_place::run(len <= in_place::IN_PLACE_BYTES, move || {
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 30));
            let mut file = file;
            file.read_to_end(&mut bytes)?;
            Ok(Bytes::from(bytes))
        })
        .await
        .map_err(|e| StateError::Unavailable(e.context(format!("reading object {key}"))))
    }

    async fn link(&self, key: &str) -> Result<String, StateError> {
        self.path_of(key)?;
        let base = self.public.read().expect("public url lock").clone();
        let encoded: Vec<String> = key
            .split('/')
            .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
            .collect();
        Ok(format!("{base}/objects/{}", encoded.join("/")))
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, StateError> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(ObjectInfo { size: m.len() }),
            Ok(_) => Err(StateError::ObjectMissing(key.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StateError::ObjectMissing(key.to_owned()))
            }
            Err(e) => Err(StateError::unavailable(
                anyhow::Error::new(e).context(format!("reading the size of object {key}")),
            )),
        }
    }

    async fn get_prefix(&self, key: &str, len: usize) -> Result<Bytes, StateError> {
        use tokio::io::AsyncReadExt;
        let path = self.path_of(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::ObjectMissing(key.to_owned()))
            }
            Err(e) => {
                return Err(StateError::unavailable(
                    anyhow::Error::new(e).context(format!("opening object {key}")),
                ))
            }
        };
        let mut head = Vec::with_capacity(len);
        file.take(len as u64)
            .read_to_end(&mut head)
            .await
            .map_err(|e| {
                StateError::unavailable(
                    anyhow::Error::new(e).context(format!("reading object {key}")),
                )
            })?;
        Ok(Bytes::from(head))
    }

    async fn signed_upload(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        valid_for: std::time::Duration,
    ) -> Result<SignedUpload, StateError> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            StateError::unavailable(anyhow::anyhow!("this bucket gives out no signed uploads"))
        })?;
        let grant = UploadGrant {
            key: key.to_owned(),
            size,
            content_type: content_type.to_owned(),
            expires_at: state::now_ms() + valid_for.as_millis() as i64,
        };
        let signature = signer.sign(&grant);
        let base = self.link(key).await?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("size", &size.to_string())
            .append_pair("type", content_type)
            .append_pair("expires", &grant.expires_at.to_string())
            .append_pair("signature", &signature)
            .finish();
        Ok(SignedUpload {
            url: format!("{base}?{query}"),
            method: "PUT",
            // The engine's PUT writes once whatever is sent; the header is given as S3's
            // presigned PUT needs it, so a client written against one works against the other.
            headers: [
                ("Content-Type".to_owned(), content_type.to_owned()),
                ("If-None-Match".to_owned(), "*".to_owned()),
            ]
            .into(),
            expires_at: grant.expires_at,
        })
    }
}

/// What a path segment must escape: everything but unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
