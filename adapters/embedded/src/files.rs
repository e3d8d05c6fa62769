//! The object store as files: `DATA_DIR/objects/<bucket>/<key>`, each written to a temporary file,
//! synced, then renamed into place, so a reader (or a crash) never sees half an object.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use state::{ObjectStore, StateError};

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    bucket: String,
    fsync: bool,
}

impl FileStore {
    /// `fsync`: sync each object before it is renamed into place (power-cut durability).
    pub fn new(objects_dir: &Path, bucket: impl Into<String>, fsync: bool) -> Self {
        let bucket = bucket.into();
        Self {
            root: objects_dir.join(&bucket),
            bucket,
            fsync,
        }
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
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let dir = path.parent().context("object path has a parent")?;
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(&body)?;
            if fsync {
                tmp.as_file().sync_all()?;
            }
            tmp.persist(&path)
                .with_context(|| format!("renaming into {}", path.display()))?;
            Ok(())
        })
        .await
        .map_err(StateError::unavailable)?
        .map_err(|e| StateError::Unavailable(e.context(format!("writing object {key}"))))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StateError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StateError::ObjectMissing(key.to_owned()))
            }
            Err(e) => Err(StateError::unavailable(
                anyhow::Error::new(e).context(format!("reading object {key}")),
            )),
        }
    }
}
