//! WAL checkpoints happen off the writers' path: the shared connection never checkpoints in a
//! commit, and a thread of the database's own copies the WAL into the database file as it grows.

use std::time::{Duration, Instant};

use embedded_adapters::sqlite::{Database, SqliteTable};
use state::ItemTable;

#[tokio::test]
async fn the_wal_is_copied_into_the_database_by_the_checkpointer_not_by_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.db");
    let db = Database::open(&path).unwrap();
    let autocheckpoint: i64 = db
        .call(|c| Ok(c.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?))
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
