//! The free-space floor: the engine keeps at least `min_free_bytes` free on `DATA_DIR`'s file
//! system. A request that would write (an upload, a reservation's PUT) first reserves what it may
//! write; if the file system's free space, less what other requests have reserved and not yet
//! finished, would fall below the floor, it is refused with 507 before a byte of its body is
//! read. So the disk never fills mid-write, the table, the renditions and the mail always have
//! room to finish what was accepted, and uploads are taken again as soon as space returns.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The free space the engine keeps by default: room for a backlog's renditions, the database's
/// growth and its write-ahead log.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 1 << 30;

#[derive(Clone)]
pub struct DiskSpace {
    dir: PathBuf,
    floor: u64,
    /// Bytes requests have reserved and not yet written or given back.
    promised: Arc<AtomicU64>,
}

/// Bytes reserved for one request; given back when dropped (by then they are written, or never
/// will be).
pub struct DiskPermit {
    promised: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for DiskPermit {
    fn drop(&mut self) {
        self.promised.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

impl DiskSpace {
    pub fn new(dir: impl Into<PathBuf>, floor: u64) -> DiskSpace {
        DiskSpace {
            dir: dir.into(),
            floor,
            promised: Default::default(),
        }
    }

    /// Bytes free for an unprivileged writer on the data directory's file system (`f_bavail`).
    pub fn free(&self) -> std::io::Result<u64> {
        let stat = rustix::fs::statvfs(&self.dir)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Room for `bytes`, or why not (the message a client is given). A file system that cannot
    /// be asked admits the request: its write then meets whatever is wrong and says so.
    pub fn reserve(&self, bytes: u64) -> Result<DiskPermit, String> {
        let promised = self.promised.fetch_add(bytes, Ordering::SeqCst) + bytes;
        let permit = DiskPermit {
            promised: self.promised.clone(),
            bytes,
        };
        let free = match self.free() {
            Ok(free) => free,
            Err(e) => {
                tracing::warn!(error = %e, "statvfs of the data directory failed; admitting");
                return Ok(permit);
            }
        };
        if free.saturating_sub(promised) < self.floor {
            return Err(format!(
                "the engine's disk is nearly full: {free} bytes free, and it keeps {} free \
                 (--min-free-space); this request may write {bytes}. Retry once space is freed",
                self.floor
            ));
        }
        Ok(permit)
    }
}
