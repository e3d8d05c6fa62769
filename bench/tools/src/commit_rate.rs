//! `bench-tools commit-rate`: how many single-row SQLite commits per second the disk allows with
//! the engine's settings, beside `bench-tools load`'s figures.

use std::time::{Duration, Instant};

/// How many single-row transactions per second SQLite commits here, with the engine's settings:
/// the floor under every write the pipeline makes.
pub fn sqlite_commit_rate(dir: &std::path::Path, duration: Duration) -> anyhow::Result<f64> {
    use event_source_mapping::{Checkpoints, Cursor};
    let db = embedded_adapters::sqlite::Database::open(&dir.join("commit-rate.db"))?;
    let checkpoints = embedded_adapters::sqlite::SqliteStream::new(db);
    let rt = tokio::runtime::Handle::current();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < duration {
        let cursor = Cursor {
            position: n,
            in_flight: None,
        };
        tokio::task::block_in_place(|| rt.block_on(checkpoints.save("bench", cursor)))
            .map_err(|e| anyhow::anyhow!(e))?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
