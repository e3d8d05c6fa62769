//! Where a file operation runs. A small write or read that is not synced takes microseconds, less
//! than handing it to a blocking thread and back (two context switches, `perf` under load), so it
//! runs in place on the runtime's thread, as the database's calls do; anything large or synced goes
//! to a blocking thread.

use anyhow::Context;

/// Files up to this size are read and written in place.
pub const IN_PLACE_BYTES: u64 = 64 * 1024;

/// Runs `f` in place when `in_place`, else on a blocking thread.
pub async fn run<T, F>(in_place: bool, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
{
    if in_place {
        return f();
    }
    tokio::task::spawn_blocking(f).await.context("file task")?
}
