//! The stream as the mappings read it: every mapping sees the same records, parsed once.

use std::sync::Arc;

use embedded_adapters::sqlite::{Database, SqliteStream, SqliteTable};
use event_source_mapping::RecordSource;
use state::ItemTable;

#[tokio::test]
async fn mappings_reading_the_same_records_share_one_parse_of_each() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("pipeline.db")).unwrap();
    let table = SqliteTable::new(db.clone());
    for _ in 0..3 {
        table.insert(&state::contract::new_item()).await.unwrap();
    }
    // Two mappings' dispatchers hold clones of one stream, as the engine wires them.
    let process = SqliteStream::new(db.clone());
    let notice = process.clone();
    let a = process.read(0, 10).await.unwrap();
    let b = notice.read(0, 10).await.unwrap();
    assert_eq!(a.len(), 3);
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.position, b.position);
        assert!(
            Arc::ptr_eq(&a.record, &b.record),
            "record {} parsed twice",
            a.position
        );
        // Positioned on read, as Lambda delivers them.
        assert_eq!(
            a.record["dynamodb"]["SequenceNumber"],
            embedded_adapters::sqlite::sequence_number(a.position)
        );
    }
    // A read from the middle finds the same records; a stream of its own parses its own.
    let later = notice.read(a[0].position, 10).await.unwrap();
    assert!(Arc::ptr_eq(&later[0].record, &a[1].record));
    let other = SqliteStream::new(db.clone()).read(0, 10).await.unwrap();
    assert!(!Arc::ptr_eq(&other[0].record, &a[0].record));
    assert_eq!(other[0].record, a[0].record);
}
