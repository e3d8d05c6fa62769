//! WAL checkpoints happen off the writers' path: the shared connection never checkpoints in a
//! commit, and a thread of the database's own copies the WAL into the database file as it grows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use embedded_adapters::sqlite::{Database, SqliteTable};
use state::ItemTable;

#[tokio::test]
async fn the_wal_is_copied_into_the_database_by_the_checkpointer_not_by_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.db");
    let db = Database::open(&path).unwrap();
    let autocheckpoint: i64 = db
        .read(|c| Ok(c.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(autocheckpoint, 0, "commits must not checkpoint");

    let before = std::fs::metadata(&path).unwrap().len();
    let table = SqliteTable::new(db.clone());
    for _ in 0..500 {
        table.insert(&state::contract::new_item()).await.unwrap();
    }
    // Nothing else checkpoints now, so the database file only grows if the checkpointer ran.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let after = std::fs::metadata(&path).unwrap().len();
        if after >= before + 256 * 1024 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database file stayed at {after} bytes (from {before}) after 500 items"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many times the WAL has started over: the checkpoint sequence number in its header.
fn wal_restarts(db_path: &std::path::Path) -> u32 {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(db_path.with_extension("db-wal"))
        .and_then(|mut wal| wal.read_exact(&mut header))
        .map_or(0, |()| {
            u32::from_be_bytes(header[12..16].try_into().unwrap())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_continuous_writes_the_wal_starts_over_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.db");
    let db = Database::open(&path).unwrap();
    // Two writers committing back to back, as under load, so that every passive checkpoint
    // overlaps commits: only the checkpointer's catch-up under the engine's connection lets the
    // WAL start over.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (table, stop) = (SqliteTable::new(db.clone()), stop.clone());
            tokio::spawn(async move {
                let mut items = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    table.insert(&state::contract::new_item()).await.unwrap();
                    items += 1;
                    // The insert runs in place and never yields: let the runtime drive its timers.
                    tokio::task::yield_now().await;
                }
                items
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while wal_restarts(&path) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut items = 0;
    for writer in writers {
        items += writer.await.unwrap();
    }
    assert!(
        wal_restarts(&path) >= 3,
        "the WAL started over {} times in {items} items; it is {} bytes",
        wal_restarts(&path),
        std::fs::metadata(path.with_extension("db-wal"))
            .unwrap()
            .len()
    );
}
