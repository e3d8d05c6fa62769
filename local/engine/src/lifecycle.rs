//! The bucket's lifecycle, on one machine. template.yaml's `ImagesBucket` expires originals
//! (`uploads/`, `incoming/`, `ingest/`) `OriginalsDays` after they arrive (rules `ExpireUploads`,
//! `ExpireIncoming`, `ExpireDropIns`); renditions stay. Locally the engine removes an original
//! that old unless an item that is not `failed` names it: a `failed` item's original, an object
//! no item names (a reservation that expired before its photo was ingested, a drop-in that was not
//! an image) go; anything of a `notified` item, or of one still on its way there, stays. (On AWS
//! the rules also expire a `notified` item's original after `OriginalsDays`; its renditions stay.)

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use embedded_adapters::files::FileStore;
use embedded_adapters::sqlite::Database;

/// The prefixes the template's rules expire.
pub const ORIGINALS: [&str; 3] = ["uploads", "incoming", "ingest"];
/// `OriginalsDays` when the template does not say.
pub const DEFAULT_ORIGINALS_DAYS: u64 = 30;

pub struct Originals {
    pub files: Arc<FileStore>,
    pub db: Database,
    pub max_age: Duration,
}

impl Originals {
    /// Removes the originals older than `max_age` at `now` that no live item names; returns how
    /// many.
    pub async fn expire(&self, now: SystemTime) -> anyhow::Result<usize> {
        let Some(cutoff) = now.checked_sub(self.max_age) else {
            return Ok(0);
        };
        let root = self.files.root().to_path_buf();
        let old = tokio::task::spawn_blocking(move || {
            let mut old = Vec::new();
            for prefix in ORIGINALS {
                collect_older(&root, &root.join(prefix), cutoff, &mut old)?;
            }
            anyhow::Ok(old)
        })
        .await??;
        let mut removed = 0;
        for key in old {
            let named = key.clone();
            let kept = self
                .db
                .read(move |c| {
                    let mut stmt = c.prepare_cached(
                        "SELECT count(*) FROM items
                         WHERE json_extract(doc, '$.object_key') = ?1 AND status <> 'failed'",
                    )?;
                    let live: i64 = stmt.query_row([named], |r| r.get(0))?;
                    Ok(live > 0)
                })
                .await?;
            if kept {
                continue;
            }
            match tokio::fs::remove_file(self.files.root().join(&key)).await {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        if removed > 0 {
            tracing::info!(removed, "originals past OriginalsDays removed");
        }
        Ok(removed)
    }
}

/// The keys (paths under `root`) of the regular files under `dir` last modified before `cutoff`,
/// partial uploads (`*.part`) aside.
fn collect_older(
    root: &Path,
    dir: &Path,
    cutoff: SystemTime,
    out: &mut Vec<String>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect_older(root, &path, cutoff, out)?;
        } else if kind.is_file() && !entry.file_name().to_string_lossy().ends_with(".part") {
            let modified = entry.metadata()?.modified()?;
            let key = path.strip_prefix(root).ok().and_then(|k| k.to_str());
            if let (true, Some(key)) = (modified < cutoff, key) {
                out.push(key.to_owned());
            }
        }
    }
    Ok(())
}
